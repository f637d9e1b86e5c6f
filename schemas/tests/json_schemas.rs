//! The JSON Schema files in `schemas/json/` must match the Rust types. Regenerate with
//! `just schemas` (which sets `PORTCULLIS_WRITE_SCHEMAS=1`).

use std::path::PathBuf;

#[test]
fn json_schema_files_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let write = std::env::var_os("PORTCULLIS_WRITE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (stem, schema) in portcullis_schemas::all_schemas() {
        let path = dir.join(format!("{stem}.json"));
        let mut want = serde_json::to_string_pretty(&schema).expect("schema serialises");
        want.push('\n');
        if write {
            std::fs::create_dir_all(&dir).expect("create schemas/json");
            std::fs::write(&path, &want).expect("write schema");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    assert!(stale.is_empty(), "stale JSON Schema files (run `just schemas`): {stale:?}");
}
