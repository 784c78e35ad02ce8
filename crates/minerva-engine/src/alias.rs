//! Aliases: names of the library that stand for the same model files as another name (made by
//! `minerva cp` / `/api/copy`, or by importing the same file twice), such as a client's own
//! model id (`claude-sonnet-4-5`) given to a local model.

use minerva_core::LibraryModel;
use std::collections::HashMap;

/// For each name that shares its model files (same digest, the same projector file), its
/// backend choice and what its own settings change in a load (a template, `num_ctx`) with an
/// older name, that older name: the first to enter the library (by `modified`, then by
/// name), a name without settings of its own before any with them. Names whose digest is not known yet (a model served by path,
/// still being hashed) are nobody's alias.
pub fn aliases(models: &[LibraryModel]) -> HashMap<String, String> {
    type Key<'a> = (
        &'a str,
        Option<String>,
        Option<&'a str>,
        Option<&'a str>,
        Option<u32>,
    );
    let mut groups: HashMap<Key, Vec<&LibraryModel>> = HashMap::new();
    for m in models.iter().filter(|m| !m.digest.is_empty()) {
        let projector = m.projector.as_deref().map(file_identity);
        groups
            .entry((
                m.digest.as_str(),
                projector,
                m.backend.as_deref(),
                m.settings.template.as_deref(),
                m.settings.num_ctx(),
            ))
            .or_default()
            .push(m);
    }
    let mut out = HashMap::new();
    for mut group in groups.into_values() {
        // A model with settings of its own (a created one) is never the original of a plain
        // name: the plain copy of the files comes first whatever its age.
        group.sort_by(|a, b| {
            (!a.settings.is_empty(), a.modified, &a.name).cmp(&(
                !b.settings.is_empty(),
                b.modified,
                &b.name,
            ))
        });
        if let Some((original, rest)) = group.split_first() {
            for alias in rest {
                out.insert(alias.name.clone(), original.name.clone());
            }
        }
    }
    out
}

/// What makes two paths the same file: its device and inode (a projector served by path and
/// its hard link in the store are one file), else the path itself.
fn file_identity(path: &std::path::Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return format!("{}:{}", meta.dev(), meta.ino());
        }
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn model(name: &str, digest: &str, secs: u64) -> LibraryModel {
        LibraryModel {
            name: name.into(),
            source: String::new(),
            digest: digest.into(),
            size: 1,
            modified: UNIX_EPOCH + Duration::from_secs(secs),
            format: "gguf".into(),
            architecture: None,
            n_params: None,
            quantization: None,
            context_length: None,
            chat_template: None,
            license: None,
            kv_bytes_per_token: None,
            fill_in_middle: false,
            backend: None,
            path: "m".into(),
            projector: None,
            settings: Default::default(),
        }
    }

    #[test]
    fn later_names_of_the_same_files_are_aliases_of_the_first() {
        let models = [
            model("claude-sonnet-4-5:latest", "aa", 20),
            model("qwen:0.5b", "aa", 10),
            model("gpt-5:latest", "aa", 30),
            model("gemma:270m", "bb", 5),
            model("by-path", "", 1),
            model("other-by-path", "", 2),
        ];
        let aliases = aliases(&models);
        assert_eq!(aliases.len(), 2);
        assert_eq!(aliases["claude-sonnet-4-5:latest"], "qwen:0.5b");
        assert_eq!(aliases["gpt-5:latest"], "qwen:0.5b");
    }

    #[test]
    fn a_name_with_its_own_template_or_context_loads_on_its_own() {
        let mut templated = model("templated:latest", "aa", 20);
        templated.settings.template = Some("{{ messages }}".into());
        let mut small = model("small:latest", "aa", 30);
        small
            .settings
            .parameters
            .insert("num_ctx".into(), serde_json::json!(512));
        let mut pirate = model("pirate:latest", "aa", 40);
        pirate.settings.system = Some("Arr.".into());
        let mut older = model("older-pirate:latest", "aa", 5);
        older.settings.system = Some("Arr.".into());
        let models = [
            model("qwen:0.5b", "aa", 10),
            templated,
            small,
            pirate,
            older,
        ];
        let aliases = aliases(&models);
        assert_eq!(aliases.len(), 2, "{aliases:?}");
        assert_eq!(aliases["pirate:latest"], "qwen:0.5b");
        // An older created model is not the plain model's original.
        assert_eq!(aliases["older-pirate:latest"], "qwen:0.5b");
    }
}
