//! boot.cfg, the bootbank's list of what to load: `key=value` lines.

use std::collections::BTreeMap;

use serde::Serialize;

/// The largest boot.cfg accepted; real ones are a few hundred bytes.
pub const MAX_BYTES: u64 = 64 * 1024;

/// A parsed boot.cfg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootCfg {
    /// The kernel file (`kernel=`), loaded first.
    pub kernel: String,
    /// Kernel options (`kernelopt=`), possibly empty.
    pub kernelopt: String,
    /// Module files (`modules=`, separated by ` --- `), in load order.
    pub modules: Vec<String>,
    /// Build number (`build=`), if given.
    pub build: Option<String>,
    /// Install/upgrade counter (`updated=`); the highest valid bank boots.
    pub updated: Option<u64>,
    /// Boot state (`bootstate=`): 0 good, 1 freshly upgraded, 2 upgrade
    /// attempted and failed, 3 empty.
    pub bootstate: Option<u32>,
    /// Every other key, kept as written.
    pub other: BTreeMap<String, String>,
}

/// Why a boot.cfg could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file is not UTF-8 text.
    #[error("boot.cfg is not text")]
    NotText,
    /// A line is neither blank, a comment, nor `key=value`.
    #[error("boot.cfg line {line}: expected key=value")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// A number field holds something else.
    #[error("boot.cfg line {line}: {key}= is not a number")]
    BadNumber {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },
    /// There is no `kernel=` line.
    #[error("boot.cfg has no kernel= line")]
    NoKernel,
    /// A file name is empty, absolute beyond the bank root, or climbs out.
    #[error("boot.cfg names an unsafe file {0:?} (only plain names in the bank are allowed)")]
    UnsafeName(String),
}

impl BootCfg {
    /// Parses the bytes of a boot.cfg.
    pub fn parse(bytes: &[u8]) -> Result<BootCfg, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotText)?;
        if text.contains('\0') {
            return Err(ParseError::NotText);
        }
        let mut cfg = BootCfg {
            kernel: String::new(),
            kernelopt: String::new(),
            modules: Vec::new(),
            build: None,
            updated: None,
            bootstate: None,
            other: BTreeMap::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(ParseError::BadLine { line: i + 1 })?;
            let (key, value) = (key.trim(), value.trim());
            let number = |key: &str| ParseError::BadNumber {
                line: i + 1,
                key: key.to_string(),
            };
            match key {
                "kernel" => cfg.kernel = file_name(value)?,
                "kernelopt" => cfg.kernelopt = value.to_string(),
                "modules" => {
                    cfg.modules = value
                        .split("---")
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(file_name)
                        .collect::<Result<_, _>>()?
                }
                "build" => cfg.build = Some(value.to_string()),
                "updated" => cfg.updated = Some(value.parse().map_err(|_| number(key))?),
                "bootstate" => cfg.bootstate = Some(value.parse().map_err(|_| number(key))?),
                _ => {
                    cfg.other.insert(key.to_string(), value.to_string());
                }
            }
        }
        if cfg.kernel.is_empty() {
            return Err(ParseError::NoKernel);
        }
        Ok(cfg)
    }

    /// The kernel followed by the modules: every file the bank must hold.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.kernel.as_str()).chain(self.modules.iter().map(String::as_str))
    }

    /// Whether the boot loader may boot this bank: bootstate 0 (good) or 1
    /// (upgraded, first boot pending); absent counts as 0.
    pub fn bootable(&self) -> bool {
        matches!(self.bootstate.unwrap_or(0), 0 | 1)
    }
}

/// The file name an entry refers to: its first word, with the one leading
/// `/` that ESXi 5+ writes removed. Anything else with a path separator,
/// `..`, or a control character is refused.
fn file_name(entry: &str) -> Result<String, ParseError> {
    let word = entry.split_whitespace().next().unwrap_or("");
    let name = word.strip_prefix('/').unwrap_or(word);
    let unsafe_name = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control);
    if unsafe_name {
        return Err(ParseError::UnsafeName(entry.to_string()));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_esxi4_boot_cfg() {
        let cfg = BootCfg::parse(
            b"kernel=vmkboot.gz\nkernelopt=\nmodules=vmk.gz --- sys.vgz --- state.tgz\n\
              build=4.0.0-164009\nupdated=2\nbootstate=0\n",
        )
        .unwrap();
        assert_eq!(cfg.kernel, "vmkboot.gz");
        assert_eq!(cfg.modules, ["vmk.gz", "sys.vgz", "state.tgz"]);
        assert_eq!(cfg.updated, Some(2));
        assert!(cfg.bootable());
        assert_eq!(
            cfg.files().collect::<Vec<_>>(),
            ["vmkboot.gz", "vmk.gz", "sys.vgz", "state.tgz"]
        );
    }

    #[test]
    fn esxi5_leading_slashes_and_unknown_keys_kept() {
        let cfg = BootCfg::parse(b"title=Loading\nkernel=/tboot.b00\nmodules=/b.b00 --- /k.b00\n")
            .unwrap();
        assert_eq!(cfg.kernel, "tboot.b00");
        assert_eq!(cfg.modules, ["b.b00", "k.b00"]);
        assert_eq!(cfg.other.get("title").map(String::as_str), Some("Loading"));
    }

    #[test]
    fn refuses_traversal_binary_and_missing_kernel() {
        assert!(matches!(
            BootCfg::parse(b"kernel=a\nmodules=ok.gz --- ../x\n"),
            Err(ParseError::UnsafeName(_))
        ));
        assert!(matches!(
            BootCfg::parse(b"kernel=//etc/passwd\n"),
            Err(ParseError::UnsafeName(_))
        ));
        assert_eq!(BootCfg::parse(b"\xff\xfe"), Err(ParseError::NotText));
        assert_eq!(BootCfg::parse(b"modules=a\n"), Err(ParseError::NoKernel));
        assert_eq!(
            BootCfg::parse(b"kernel=a\nupdated=x\n"),
            Err(ParseError::BadNumber {
                line: 2,
                key: "updated".into()
            })
        );
        assert_eq!(
            BootCfg::parse(b"kernel=a\ngarbage\n"),
            Err(ParseError::BadLine { line: 2 })
        );
    }

    #[test]
    fn bootstate_decides_bootable() {
        for (state, ok) in [(0, true), (1, true), (2, false), (3, false)] {
            let cfg = BootCfg::parse(format!("kernel=k\nbootstate={state}\n").as_bytes()).unwrap();
            assert_eq!(cfg.bootable(), ok, "bootstate={state}");
        }
    }
}
