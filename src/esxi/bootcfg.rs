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
    /// `quickboot=`: set on a bank meant for one QuickBoot only.
    pub quickboot: Option<u32>,
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
            quickboot: None,
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
                "kernel" if value.is_empty() => cfg.kernel.clear(),
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
                "quickboot" => cfg.quickboot = Some(value.parse().map_err(|_| number(key))?),
                _ => {
                    cfg.other.insert(key.to_string(), value.to_string());
                }
            }
        }
        // Only an empty bank (bootstate=3) may name no kernel.
        if cfg.kernel.is_empty() && !cfg.is_empty_bank() {
            return Err(ParseError::NoKernel);
        }
        Ok(cfg)
    }

    /// The boot.cfg of an empty bank, as esxstick writes it into an
    /// alternate bank: bootstate=3 (safeboot skips the bank), nothing to
    /// load, and the bootstate line first, inside the sector safeboot
    /// rewrites in place.
    pub fn empty_bank() -> String {
        "bootstate=3\nupdated=0\nbuild=\nkernel=\nkernelopt=\nmodules=\n".to_string()
    }

    /// Whether this is an empty bank's boot.cfg: bootstate=3 and no kernel.
    pub fn is_empty_bank(&self) -> bool {
        self.bootstate == Some(3) && self.kernel.is_empty()
    }

    /// The kernel followed by the modules: every file the bank must hold
    /// (none for an empty bank).
    pub fn files(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.kernel.as_str())
            .filter(|k| !k.is_empty())
            .chain(self.modules.iter().map(String::as_str))
    }
}

/// boot.cfg `text` with `name` added to its modules — before `before`
/// when that module is listed, else at the end — written as the other
/// entries are (with a leading `/` when they have one); `None` when
/// `name` is listed already. Only the (last, effective) `modules=` line
/// changes; a boot.cfg without one gets one.
pub fn add_module(text: &str, name: &str, before: Option<&str>) -> Option<String> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let is = |entry: &str, want: &str| file_name(entry).is_ok_and(|n| n.eq_ignore_ascii_case(want));
    let Some(i) = lines.iter().rposition(|l| key_of(l) == Some("modules")) else {
        terminate_last(&mut lines);
        lines.push(format!("modules={name}\n"));
        return Some(lines.concat());
    };
    let line = lines.get(i)?.clone();
    let (head, value) = line.split_once('=')?;
    let mut entries: Vec<&str> = value
        .split("---")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.iter().any(|e| is(e, name)) {
        return None;
    }
    let entry = match entries.first() {
        Some(first) if first.starts_with('/') => format!("/{name}"),
        _ => name.to_string(),
    };
    let at = before
        .and_then(|b| entries.iter().position(|e| is(e, b)))
        .unwrap_or(entries.len());
    entries.insert(at, &entry);
    let eol = if line.ends_with('\n') { "\n" } else { "" };
    *lines.get_mut(i)? = format!("{head}={}{eol}", entries.join(" --- "));
    Some(lines.concat())
}

/// boot.cfg `text` with `updated=` set to `updated` (in place, or
/// appended) and `bootstate=` to `bootstate` on the first line, inside
/// the sector safeboot rewrites in place; every other line as it was.
pub fn set_counters(text: &str, updated: u64, bootstate: u32) -> String {
    let mut lines = vec![format!("bootstate={bootstate}\n")];
    let mut has_updated = false;
    for line in text.split_inclusive('\n') {
        match key_of(line) {
            Some("bootstate") => {}
            Some("updated") => {
                has_updated = true;
                let eol = if line.ends_with('\n') { "\n" } else { "" };
                lines.push(format!("updated={updated}{eol}"));
            }
            _ => lines.push(line.to_string()),
        }
    }
    if !has_updated {
        terminate_last(&mut lines);
        lines.push(format!("updated={updated}\n"));
    }
    lines.concat()
}

/// The key of a `key=value` line, trimmed.
fn key_of(line: &str) -> Option<&str> {
    line.split_once('=').map(|(key, _)| key.trim())
}

/// Ends the last line with a newline, if it lacks one.
fn terminate_last(lines: &mut [String]) {
    if let Some(last) = lines.last_mut().filter(|l| !l.ends_with('\n')) {
        last.push('\n');
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
        assert_eq!(cfg.bootstate, Some(0));
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
    fn modules_are_added_once_where_esxi_customizer_adds_them() {
        let cfg = "bootstate=0\nkernel=vmkboot.gz\nmodules=vmk.gz --- sys.vgz --- license.tgz --- state.tgz\nupdated=1\n";
        let added = add_module(cfg, "oem.tgz", Some("license.tgz")).unwrap();
        assert_eq!(
            added,
            "bootstate=0\nkernel=vmkboot.gz\nmodules=vmk.gz --- sys.vgz --- oem.tgz --- license.tgz --- state.tgz\nupdated=1\n"
        );
        assert_eq!(add_module(&added, "OEM.TGZ", Some("license.tgz")), None);
        let parsed = BootCfg::parse(added.as_bytes()).unwrap();
        assert_eq!(parsed.modules[2], "oem.tgz");
        // No license.tgz: at the end, with the entries' leading slash.
        assert_eq!(
            add_module(
                "kernel=/b.b00\nmodules=/k.b00 --- /s.v00",
                "state.tgz",
                Some("license.tgz")
            )
            .unwrap(),
            "kernel=/b.b00\nmodules=/k.b00 --- /s.v00 --- /state.tgz"
        );
        assert_eq!(
            add_module("kernel=k", "state.tgz", None).unwrap(),
            "kernel=k\nmodules=state.tgz\n"
        );
    }

    #[test]
    fn counters_are_set_with_bootstate_first() {
        let cfg = "kernel=k\nmodules=m\nbuild=4.0.0-1\nupdated=1\nbootstate=3\n";
        let set = set_counters(cfg, 4, 0);
        assert_eq!(
            set,
            "bootstate=0\nkernel=k\nmodules=m\nbuild=4.0.0-1\nupdated=4\n"
        );
        let parsed = BootCfg::parse(set.as_bytes()).unwrap();
        assert_eq!((parsed.updated, parsed.bootstate), (Some(4), Some(0)));
        assert_eq!(
            set_counters("kernel=k", 2, 0),
            "bootstate=0\nkernel=k\nupdated=2\n"
        );
    }

    #[test]
    fn an_empty_bank_names_nothing_and_only_it_may() {
        let cfg = BootCfg::parse(BootCfg::empty_bank().as_bytes()).unwrap();
        assert!(cfg.is_empty_bank());
        assert_eq!(cfg.files().count(), 0);
        assert!(BootCfg::empty_bank().starts_with("bootstate=3\n"));
        assert_eq!(
            BootCfg::parse(b"kernel=\nbootstate=0\n"),
            Err(ParseError::NoKernel)
        );
        let quick = BootCfg::parse(b"kernel=k\nquickboot=1\n").unwrap();
        assert_eq!(quick.quickboot, Some(1));
        assert!(matches!(
            BootCfg::parse(b"kernel=k\nquickboot=x\n"),
            Err(ParseError::BadNumber { .. })
        ));
    }
}
