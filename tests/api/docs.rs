//! The reference documentation keeps up with the code: every key of `config/defaults.toml` is
//! documented in `docs/configuration.md`.

use crate::helpers::repo_path;

fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            toml::Value::Table(section) => keys(section, &key, out),
            _ => out.push(key),
        }
    }
}

#[test]
fn every_key_of_the_defaults_is_documented() {
    let defaults: toml::Table = std::fs::read_to_string(repo_path("config/defaults.toml")).unwrap().parse().unwrap();
    let doc = std::fs::read_to_string(repo_path("docs/configuration.md")).unwrap();
    let mut all = Vec::new();
    keys(&defaults, "", &mut all);
    assert!(all.len() > 20, "{all:?}");
    let missing: Vec<&String> = all.iter().filter(|key| !doc.contains(&format!("`{key}`"))).collect();
    assert!(missing.is_empty(), "docs/configuration.md does not document {missing:?}");
}
