//! Diagnostics: one line per problem, with the place in the user's file.

use std::fmt;

use serde::Serialize;
use serde_saphyr::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A position in the inventory file (1-based line and column; 0 = unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl<T> From<&Spanned<T>> for Pos {
    fn from(s: &Spanned<T>) -> Self {
        Pos {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }
}

/// One problem found in an inventory: where, which field, what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `nodes[1].address`.
    pub field: String,
    pub message: String,
    /// What the user should do about it.
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

/// Collects diagnostics while validating, so the user sees every problem in one run.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Sink {
    pub fn new(file: &str) -> Self {
        Sink {
            file: file.to_string(),
            items: Vec::new(),
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        at: Pos,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub fn error(
        &mut self,
        at: impl Into<Pos>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Error, at.into(), field, message, hint);
    }

    pub fn warn(
        &mut self,
        at: impl Into<Pos>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Warning, at.into(), field, message, hint);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Turns a YAML/serde error into a diagnostic, keeping serde-saphyr's location and message
/// but dropping its multi-line snippet (our diagnostics are one line each).
pub(crate) fn from_yaml_error(file: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let loc = err.location();
    let (line, column) = loc.map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    let text = err.without_snippet().to_string();
    let message = strip_location_prefix(&text).to_string();
    let (field, hint) = if let Some(name) = between(&message, "unknown field `", "`") {
        (
            name.to_string(),
            "remove it or fix its spelling; docs/inventory.md lists every field".to_string(),
        )
    } else if let Some(name) = between(&message, "missing field `", "`") {
        (name.to_string(), "add it; it has no default".to_string())
    } else {
        (
            "yaml".to_string(),
            "fix the value at this place; see docs/inventory.md".to_string(),
        )
    };
    Diagnostic {
        severity: Severity::Error,
        file: file.to_string(),
        line,
        column,
        field,
        message: strip_location_suffix(message.lines().next().unwrap_or_default().trim())
            .to_string(),
        hint,
    }
}

fn strip_location_prefix(text: &str) -> &str {
    let t = text.trim_start_matches("error: ");
    // "line 3 column 5: message"
    if let Some(rest) = t.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return &rest[idx + 2..];
    }
    t
}

/// serde-saphyr repeats the place at the end ("... at line 7, column 59"); we print it first.
fn strip_location_suffix(text: &str) -> &str {
    match text.rfind(" at line ") {
        Some(i) if text[i..].contains(", column ") => &text[..i],
        _ => text,
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_saphyr_location_prefix() {
        assert_eq!(
            strip_location_prefix("error: line 3 column 5: unknown field `x`"),
            "unknown field `x`"
        );
        assert_eq!(strip_location_prefix("plain"), "plain");
    }

    #[test]
    fn display_is_one_line_with_place_and_hint() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: "c.yaml".into(),
            line: 4,
            column: 7,
            field: "endpoint.port".into(),
            message: "bad".into(),
            hint: "fix it".into(),
        };
        assert_eq!(
            d.to_string(),
            "c.yaml:4:7: error: endpoint.port: bad (fix it)"
        );
    }
}
