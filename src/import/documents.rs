//! Reading the input: every YAML or JSON document of every file (`-`: stdin) as a Kubernetes
//! resource, kept both as JSON (to read) and as YAML (to re-emit with its key order).

use serde::Deserialize;
use serde_json::Value;

/// One Kubernetes resource of the input.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub namespace: Option<String>,
    /// The whole document, to read fields from.
    pub json: Value,
    /// The whole document with its key order, to re-emit (the header-routing VirtualService).
    pub yaml: serde_yaml_ng::Value,
}

impl Resource {
    /// `Kind/name`, as messages name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// The field at a JSON Pointer (`/spec/hosts`).
    pub fn at(&self, pointer: &str) -> Option<&Value> {
        self.json.pointer(pointer).filter(|v| !v.is_null())
    }

    /// The API group of `apiVersion` (`networking.istio.io`), empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, version)| version)
    }
}

/// Every resource in `text` (YAML, of which JSON is a subset; `---` separates documents, a
/// `List` is opened). `file` names the input in errors; YAML errors carry line and column.
pub fn read(file: &str, text: &str) -> Result<Vec<Resource>, String> {
    let mut resources = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml_ng::Value::deserialize(document)
            .map_err(|e| format!("{file}: invalid YAML: {}", one_line(&e.to_string())))?;
        if yaml.is_null() {
            continue;
        }
        collect(file, index, yaml, &mut resources)?;
    }
    Ok(resources)
}

fn collect(
    file: &str,
    index: usize,
    yaml: serde_yaml_ng::Value,
    out: &mut Vec<Resource>,
) -> Result<(), String> {
    let json: Value = serde_json::to_value(&yaml).map_err(|e| {
        format!(
            "{file}: document {index}: not JSON-compatible: {}",
            one_line(&e.to_string())
        )
    })?;
    let text = |pointer: &str| json.pointer(pointer).and_then(Value::as_str);
    let kind = text("/kind").ok_or_else(|| {
        format!(
            "{file}: document {index}: kind: missing; every document must be a Kubernetes resource"
        )
    })?;
    if kind == "List" {
        if let serde_yaml_ng::Value::Mapping(map) = &yaml {
            if let Some(serde_yaml_ng::Value::Sequence(items)) = map.get("items") {
                for item in items.clone() {
                    collect(file, index, item, out)?;
                }
            }
        }
        return Ok(());
    }
    let api_version = text("/apiVersion")
        .ok_or_else(|| format!("{file}: document {index}: {kind}: apiVersion: missing"))?;
    let name = text("/metadata/name")
        .ok_or_else(|| format!("{file}: document {index}: {kind}: metadata.name: missing"))?;
    out.push(Resource {
        kind: kind.to_string(),
        api_version: api_version.to_string(),
        name: name.to_string(),
        namespace: text("/metadata/namespace").map(str::to_string),
        json: json.clone(),
        yaml,
    });
    Ok(())
}

/// Messages are one line: a YAML error's text may hold newlines.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
