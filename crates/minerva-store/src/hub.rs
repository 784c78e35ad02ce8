//! Pull sources: Hugging Face hub references and URLs, and how they resolve to one file.
//!
//! `hf.co/OWNER/REPO[:QUANT]` (also `huggingface.co/...` and `https://huggingface.co/OWNER/REPO`)
//! lists the repository (`GET {endpoint}/api/models/{owner}/{repo}`) and picks the GGUF whose
//! name carries the quantization (never an `mmproj` file), and the repository's vision projector
//! with it when it has one ([`pick_projector`]); `OWNER/REPO/FILE.gguf` names a file in a
//! repository (that file alone); any other `https://` or `http://` URL is downloaded as it is. The hub's base URL is
//! `$HF_ENDPOINT` when set, as the hub's own clients do, else `https://huggingface.co`.

use crate::{Result, StoreError};

/// The quantization picked when a hub reference names none.
const DEFAULT_QUANT: &str = "q4_k_m";

/// Where a pull downloads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A hub repository and the quantization to pick in it.
    HubRepo {
        owner: String,
        repo: String,
        quant: Option<String>,
    },
    /// One file of a hub repository.
    HubFile {
        owner: String,
        repo: String,
        file: String,
    },
    /// A plain URL of a GGUF file.
    Url(String),
}

/// The hub's base URL: `$HF_ENDPOINT` (without a trailing `/`), else `https://huggingface.co`.
pub fn default_endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| "https://huggingface.co".to_string())
}

impl Source {
    /// Parses a pull source (see the module's note).
    pub fn parse(input: &str) -> Result<Source> {
        let input = input.trim();
        if input.is_empty() {
            return Err(StoreError::Invalid("the pull source is empty".into()));
        }
        if input
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(StoreError::Invalid(format!(
                "invalid pull source '{input}'"
            )));
        }
        for scheme in ["https://", "http://"] {
            if let Some(rest) = strip_prefix_ci(input, scheme) {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
                if is_hub_host(host) && parts.len() == 2 && !path.contains(['?', '#']) {
                    return hub_repo(&format!("{}/{}", parts[0], parts[1]));
                }
                if host.is_empty() {
                    return Err(StoreError::Invalid(format!(
                        "invalid URL '{input}': no host"
                    )));
                }
                return Ok(Source::Url(input.to_string()));
            }
        }
        for prefix in ["hf.co/", "huggingface.co/"] {
            if let Some(rest) = strip_prefix_ci(input, prefix) {
                return hub_repo(rest);
            }
        }
        let parts: Vec<&str> = input.split('/').collect();
        if parts.len() >= 3 && input.to_ascii_lowercase().ends_with(".gguf") {
            check_repo_part(parts[0], "owner")?;
            check_repo_part(parts[1], "repository")?;
            let file = parts[2..].join("/");
            for segment in &parts[2..] {
                check_repo_part(segment, "file path")?;
            }
            return Ok(Source::HubFile {
                owner: parts[0].to_string(),
                repo: parts[1].to_string(),
                file,
            });
        }
        Err(StoreError::Invalid(format!(
            "unknown pull source '{input}': use hf.co/OWNER/REPO[:QUANT], OWNER/REPO/FILE.gguf or an https:// URL of a GGUF file"
        )))
    }

    /// The name a pulled model gets when none is given: `hf.co/owner/repo:quant` (or `:latest`)
    /// for a repository, `hf.co/owner/repo:<file stem>` for a file, `<file stem>:latest` for a URL.
    pub fn default_name(&self) -> String {
        match self {
            Source::HubRepo { owner, repo, quant } => format!(
                "hf.co/{owner}/{repo}:{}",
                quant.as_deref().unwrap_or("latest")
            )
            .to_ascii_lowercase(),
            Source::HubFile { owner, repo, file } => {
                format!("hf.co/{owner}/{repo}:{}", stem(file)).to_ascii_lowercase()
            }
            Source::Url(url) => format!("{}:latest", stem(url)).to_ascii_lowercase(),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn is_hub_host(host: &str) -> bool {
    ["huggingface.co", "hf.co", "www.huggingface.co"]
        .iter()
        .any(|h| host.eq_ignore_ascii_case(h))
}

fn hub_repo(rest: &str) -> Result<Source> {
    let (path, quant) = match rest.split_once(':') {
        Some((path, quant)) => (path, Some(quant)),
        None => (rest, None),
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let [owner, repo] = parts[..] else {
        return Err(StoreError::Invalid(format!(
            "invalid hub reference 'hf.co/{rest}': expected hf.co/OWNER/REPO[:QUANT]"
        )));
    };
    check_repo_part(owner, "owner")?;
    check_repo_part(repo, "repository")?;
    if let Some(q) = quant {
        check_repo_part(q, "quantization")?;
    }
    Ok(Source::HubRepo {
        owner: owner.to_string(),
        repo: repo.to_string(),
        quant: quant.map(str::to_string),
    })
}

/// Hub owners, repositories, file path segments and quantizations: `[A-Za-z0-9._+-]`, not
/// starting with '.', never `..`.
fn check_repo_part(part: &str, what: &str) -> Result<()> {
    let ok = !part.is_empty()
        && part.len() <= 128
        && !part.starts_with('.')
        && !part.contains("..")
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {what} '{part}' in the pull source"
        )))
    }
}

/// The file name without directories, query or extension.
fn stem(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => file.to_string(),
    }
}

/// The files to pull when a repository is a Hugging Face model directory rather than a set of
/// GGUF files: it has no GGUF, and it has `config.json` and safetensors weights. `None` when
/// the repository has GGUF files (they are picked by [`pick_file`]). A quantization tag on a
/// directory is an error (its weights are what they are), except `latest`.
pub(crate) fn model_directory(
    files: &[String],
    quant: Option<&str>,
    repo: &str,
) -> Result<Option<Vec<String>>> {
    let lower: Vec<String> = files.iter().map(|f| f.to_ascii_lowercase()).collect();
    if lower.iter().any(|f| f.ends_with(".gguf")) {
        return Ok(None);
    }
    let is_dir = lower.iter().any(|f| f == "config.json")
        && lower
            .iter()
            .any(|f| f.ends_with(".safetensors") && !f.contains('/'));
    if !is_dir {
        return Ok(None);
    }
    if let Some(q) = quant.filter(|q| !q.eq_ignore_ascii_case("latest")) {
        return Err(StoreError::Invalid(format!(
            "{repo} is a Hugging Face model directory (safetensors), not a set of GGUF files: it has no quantization '{q}'; pull hf.co/{repo}"
        )));
    }
    let mut picked: Vec<String> = files
        .iter()
        .filter(|f| minerva_core::hf::is_model_file(f))
        .cloned()
        .collect();
    picked.sort();
    Ok(Some(picked))
}

/// Picks the GGUF file of a repository listing for `quant` (see the module's note).
pub(crate) fn pick_file(files: &[String], quant: Option<&str>, repo: &str) -> Result<String> {
    let mut ggufs: Vec<&String> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .filter(|f| !f.to_ascii_lowercase().contains("mmproj"))
        .collect();
    ggufs.sort();
    let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if ggufs.is_empty() {
        return Err(StoreError::NotFound(format!(
            "{repo}: the repository has no GGUF file"
        )));
    }
    let wanted = quant.unwrap_or(DEFAULT_QUANT).to_ascii_lowercase();
    let matches: Vec<&String> = ggufs
        .iter()
        .copied()
        .filter(|f| names_quant(f, &wanted))
        .collect();
    match (matches.as_slice(), quant) {
        ([one], _) => Ok((*one).clone()),
        ([], None) => Ok(ggufs[0].clone()),
        ([], Some(q)) => Err(StoreError::NotFound(format!(
            "{repo}: no GGUF file for quantization '{q}'; the repository has: {}",
            list(&ggufs)
        ))),
        (many, _) => Err(StoreError::Invalid(format!(
            "{repo}: several GGUF files match '{wanted}' ({}); pull one with OWNER/REPO/FILE.gguf",
            list(many)
        ))),
    }
}

/// The vision projector to pull with the model file `model` of a repository listing, chosen
/// as llama.cpp's `-hf` chooses it (`find_best_mmproj` in `common/download.cpp`): among the
/// GGUF files whose path contains `mmproj` (in any case) in the model's directory or one above
/// it, the one in the deepest directory, then the one whose quantization's bit count is the
/// closest to the model's (`Q4_K_M` → 4, `Q8_0` → 8, `F16` → 16: a Q4_K_M model gets an
/// `mmproj-Q8_0` before an `mmproj-F16`), then the first by name. `None` when there is none.
pub(crate) fn pick_projector(files: &[String], model: &str) -> Option<String> {
    let parent = |path: &str| -> Vec<String> {
        let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
        parts.pop();
        parts
    };
    let model_dir = parent(model);
    let model_bits = quant_bits(model);
    let mut sorted: Vec<&String> = files.iter().collect();
    sorted.sort();
    let mut best: Option<(usize, u32, &String)> = None;
    for file in sorted {
        let lower = file.to_ascii_lowercase();
        if !lower.ends_with(".gguf") || !lower.contains("mmproj") {
            continue;
        }
        let dir = parent(file);
        if !model_dir.starts_with(&dir) {
            continue;
        }
        let depth = dir.len();
        let diff = quant_bits(file).abs_diff(model_bits);
        let better = best.is_none_or(|(best_depth, best_diff, _)| {
            depth > best_depth || (depth == best_depth && diff < best_diff)
        });
        if better {
            best = Some((depth, diff, file));
        }
    }
    best.map(|(_, _, file)| file.clone())
}

/// The bit count of a GGUF file's quantization, as llama.cpp reads it from the name: the
/// first number in the last `-` or `.` separated word of the stem (split suffixes such as
/// `-00001-of-00003` left out); 0 when there is none.
fn quant_bits(path: &str) -> u32 {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some(stem) = name
        .len()
        .checked_sub(5)
        .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".gguf"))
        .map(|i| &name[..i])
    else {
        return 0;
    };
    let stem = strip_split_suffix(stem);
    let tag = stem.rsplit(['-', '.']).next().unwrap_or(stem);
    if tag.len() == stem.len() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return 0;
    }
    let digits: String = tag
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

/// `model-Q4_K_M-00001-of-00003` → `model-Q4_K_M`.
fn strip_split_suffix(stem: &str) -> &str {
    let bytes = stem.as_bytes();
    let split = bytes.len() >= 15 && {
        let tail = &bytes[bytes.len() - 15..];
        tail[0] == b'-'
            && tail[1..6].iter().all(u8::is_ascii_digit)
            && tail[6..10].eq_ignore_ascii_case(b"-of-")
            && tail[10..].iter().all(u8::is_ascii_digit)
    };
    if split {
        &stem[..stem.len() - 15]
    } else {
        stem
    }
}

/// True when the file name carries `quant` as a whole word (`q4_k` is not in `q4_k_m`).
fn names_quant(file: &str, quant: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
    let bytes = name.as_bytes();
    name.match_indices(quant).any(|(i, m)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + m.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Percent-encodes a repository file path for a URL (keeps `/`).
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() -> Result<()> {
        let repo = Source::HubRepo {
            owner: "ggml-org".into(),
            repo: "gemma-3-270m-GGUF".into(),
            quant: Some("Q4_K_M".into()),
        };
        assert_eq!(
            Source::parse("hf.co/ggml-org/gemma-3-270m-GGUF:Q4_K_M")?,
            repo
        );
        assert_eq!(
            Source::parse("huggingface.co/ggml-org/gemma-3-270m-GGUF:Q4_K_M")?,
            repo
        );
        assert_eq!(
            repo.default_name(),
            "hf.co/ggml-org/gemma-3-270m-gguf:q4_k_m"
        );
        let url = Source::parse("https://huggingface.co/ggml-org/gemma-3-270m-GGUF")?;
        assert_eq!(
            url.default_name(),
            "hf.co/ggml-org/gemma-3-270m-gguf:latest"
        );
        let file = Source::parse("ggml-org/gemma-3-270m-GGUF/gemma-3-270m-Q8_0.gguf")?;
        assert_eq!(
            file.default_name(),
            "hf.co/ggml-org/gemma-3-270m-gguf:gemma-3-270m-q8_0"
        );
        let plain = Source::parse("http://127.0.0.1:8000/files/tiny.gguf?download=1")?;
        assert_eq!(plain.default_name(), "tiny:latest");
        for bad in [
            "",
            "hf.co/a",
            "hf.co/a/b/c",
            "hf.co/../b",
            "hf.co/a/b:../x",
            "a/../b.gguf",
            "x",
            "a b",
            "hf.co/a/b:",
        ] {
            assert!(
                matches!(Source::parse(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn directories_are_told_from_gguf_repositories() -> Result<()> {
        let hf: Vec<String> = [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "README.md",
            ".gitattributes",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "extra/model.safetensors",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            model_directory(&hf, None, "o/r")?,
            Some(
                [
                    "README.md",
                    "config.json",
                    "model.safetensors",
                    "tokenizer.json",
                    "tokenizer_config.json"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert!(model_directory(&hf, Some("latest"), "o/r")?.is_some());
        assert!(matches!(
            model_directory(&hf, Some("Q4_K_M"), "o/r"),
            Err(StoreError::Invalid(_))
        ));
        let gguf = ["config.json", "m.safetensors", "m-Q4_K_M.gguf"]
            .map(String::from)
            .to_vec();
        assert_eq!(model_directory(&gguf, None, "o/r")?, None);
        let neither = ["README.md"].map(String::from).to_vec();
        assert_eq!(model_directory(&neither, None, "o/r")?, None);
        Ok(())
    }

    #[test]
    fn projector_selection() {
        let files = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let pick = |names: &[&str], model: &str| pick_projector(&files(names), model);
        // The only one, in any case.
        let one = ["m-Q4_K_M.gguf", "MMProj-m-f16.gguf", "README.md"];
        assert_eq!(
            pick(&one, "m-Q4_K_M.gguf").as_deref(),
            Some("MMProj-m-f16.gguf")
        );
        assert_eq!(pick(&["m-Q4_K_M.gguf"], "m-Q4_K_M.gguf"), None);
        assert_eq!(
            pick(&["m-Q4_K_M.gguf", "mmproj.bin"], "m-Q4_K_M.gguf"),
            None
        );
        // The closest bit count to the model's: Q8_0 for Q4_K_M, F16 for F16, F32 for F32.
        let several = [
            "m-F16.gguf",
            "m-Q4_K_M.gguf",
            "mmproj-m-F16.gguf",
            "mmproj-m-F32.gguf",
            "mmproj-m-Q8_0.gguf",
        ];
        assert_eq!(
            pick(&several, "m-Q4_K_M.gguf").as_deref(),
            Some("mmproj-m-Q8_0.gguf")
        );
        assert_eq!(
            pick(&several, "m-F16.gguf").as_deref(),
            Some("mmproj-m-F16.gguf")
        );
        assert_eq!(
            pick(&several, "m-F32.gguf").as_deref(),
            Some("mmproj-m-F32.gguf")
        );
        // A tie goes to the first by name.
        let tie = ["m-Q4_K_M.gguf", "mmproj-b-BF16.gguf", "mmproj-a-F16.gguf"];
        assert_eq!(
            pick(&tie, "m-Q4_K_M.gguf").as_deref(),
            Some("mmproj-a-F16.gguf")
        );
        // The model's own directory first, then one above it; never another directory.
        let dirs = [
            "Q4/m-Q4_K_M.gguf",
            "mmproj-F16.gguf",
            "Q4/mmproj-F32.gguf",
            "Q8/mmproj-Q4_0.gguf",
        ];
        assert_eq!(
            pick(&dirs, "Q4/m-Q4_K_M.gguf").as_deref(),
            Some("Q4/mmproj-F32.gguf")
        );
        assert_eq!(
            pick(&dirs, "m-Q4_K_M.gguf").as_deref(),
            Some("mmproj-F16.gguf")
        );
        assert_eq!(pick(&dirs[2..], "Q5/m-Q5_K_M.gguf"), None);
    }

    #[test]
    fn quantization_bits() {
        for (name, bits) in [
            ("m-Q4_K_M.gguf", 4),
            ("dir/m.Q8_0.gguf", 8),
            ("mmproj-model-f16.gguf", 16),
            ("m-BF16.gguf", 16),
            ("m-Q4_K_M-00001-of-00003.gguf", 4),
            ("mmproj.gguf", 0),
            ("m-F16.bin", 0),
        ] {
            assert_eq!(quant_bits(name), bits, "{name}");
        }
    }

    #[test]
    fn quant_selection() -> Result<()> {
        let files: Vec<String> = [
            "README.md",
            "m-Q4_K_M.gguf",
            "m-Q4_K_S.gguf",
            "m-Q8_0.gguf",
            "m-BF16.gguf",
            "m-F16.gguf",
            "mmproj-m-F16.gguf",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(pick_file(&files, None, "r")?, "m-Q4_K_M.gguf");
        assert_eq!(pick_file(&files, Some("q8_0"), "r")?, "m-Q8_0.gguf");
        assert_eq!(pick_file(&files, Some("F16"), "r")?, "m-F16.gguf");
        assert!(
            matches!(pick_file(&files, Some("Q3_K"), "r"), Err(StoreError::NotFound(m)) if m.contains("m-Q8_0.gguf"))
        );
        let two = ["a-Q4_K_M.gguf", "b-Q4_K_M.gguf"]
            .map(String::from)
            .to_vec();
        assert!(
            matches!(pick_file(&two, None, "r"), Err(StoreError::Invalid(m)) if m.contains("b-Q4_K_M.gguf"))
        );
        let only = ["x.gguf", "mmproj.gguf"].map(String::from).to_vec();
        assert_eq!(pick_file(&only, None, "r")?, "x.gguf");
        // A projector is never the model, whatever its name says.
        let vlm = ["tiny-vlm-Q4_K_M.gguf", "MMPROJ-tiny-vlm-Q4_K_M.gguf"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            pick_file(&vlm, Some("Q4_K_M"), "r")?,
            "tiny-vlm-Q4_K_M.gguf"
        );
        assert!(pick_file(&["a.bin".to_string()], None, "r").is_err());
        Ok(())
    }
}
