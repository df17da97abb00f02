//! docs/cluster.schema.json is the schema the inventory's types generate, and the examples'
//! keys are all in it.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn checked_in_schema_is_current() {
    let want = serde_json::to_string_pretty(&inventory::json_schema()).unwrap() + "\n";
    let path = repo("docs/cluster.schema.json");
    if std::env::var_os("KUBEHA_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/cluster.schema.json is out of date: run \
         KUBEHA_BLESS=1 cargo test -p kubeha-inventory --test schema"
    );
}

/// The schema of `node`, through `$ref` and the `anyOf` of an optional value.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return resolve(root, &root["$defs"][name]);
    }
    if let Some(alts) = node.get("anyOf").and_then(Value::as_array) {
        if let Some(a) = alts.iter().find(|a| a.get("type") != Some(&"null".into())) {
            return resolve(root, a);
        }
    }
    node
}

/// Every key of `doc` is allowed by `schema`; returns the paths of those that are not.
fn unknown_keys(root: &Value, schema: &Value, doc: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                let sub = schema
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                match sub {
                    Some(s) => unknown_keys(root, s, v, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let sub = schema.get("items").unwrap_or(&Value::Null);
                unknown_keys(root, sub, v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_examples_use_only_keys_of_the_schema_and_a_typo_is_caught() {
    let schema = inventory::json_schema();
    assert_eq!(schema["additionalProperties"], false);
    for ex in ["examples/cluster.yaml", "examples/minimal.yaml"] {
        let text = std::fs::read_to_string(repo(ex)).unwrap();
        inventory::parse_str(&text, ex).expect("the example is valid");
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        let mut bad = Vec::new();
        unknown_keys(&schema, &schema, &doc, "", &mut bad);
        assert!(bad.is_empty(), "{ex}: keys not in the schema: {bad:?}");
        assert!(!schema["required"].as_array().unwrap().is_empty());
    }
    let typo: Value =
        serde_saphyr::from_str("cluster: {name: a, kubernets_version: 1.31.0}").unwrap();
    let mut bad = Vec::new();
    unknown_keys(&schema, &schema, &typo, "", &mut bad);
    assert_eq!(bad, [".cluster.kubernets_version"]);
}
