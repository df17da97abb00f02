//! `kubeha schema`: the JSON Schema of cluster.yaml, for editors (the same as
//! docs/cluster.schema.json, which a test keeps current).

pub fn run() -> u8 {
    match serde_json::to_string_pretty(&inventory::json_schema()) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("kubeha schema: {e}");
            1
        }
    }
}
