//! state.tgz, the host's saved configuration in its bootbank: ESXi's
//! backup.sh packs the sticky files of /etc into local.tgz and wraps that
//! in state.tgz. `etc/vmware/esx.conf` inside local.tgz names the host
//! (`/adv/Misc/HostName`) and its system UUID (`/system/uuid`). ESXi 7.0
//! U2 and later encrypt local.tgz (`local.tgz.ve`), which cannot be read
//! offline.

use serde::Serialize;

use crate::error::ConfigProblem;
use crate::esxi::config::archive;

/// The file name of the configuration in a bank and in a bundle.
pub const STATE_TGZ: &str = "state.tgz";
/// The archive of /etc inside state.tgz.
pub const LOCAL_TGZ: &str = "local.tgz";
/// local.tgz encrypted (ESXi 7.0 U2 and later).
pub const LOCAL_TGZ_ENCRYPTED: &str = "local.tgz.ve";
/// The host's configuration file inside local.tgz.
const ESX_CONF: &str = "etc/vmware/esx.conf";

/// What a state.tgz says of its host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    /// `/adv/Misc/HostName` in esx.conf.
    pub host: Option<String>,
    /// `/system/uuid` in esx.conf.
    pub system_uuid: Option<String>,
    /// Files in local.tgz.
    pub files: usize,
}

/// Reads and checks a state.tgz (named `archive` in errors): gzip and tar
/// sound, paths inside, holding a local.tgz that is sound too; returns
/// what its esx.conf says (nothing, when it has none). An encrypted
/// configuration is refused: it can be neither checked nor read.
pub fn read(bytes: &[u8], archive: &str) -> Result<HostConfig, ConfigProblem> {
    let members = archive::read(bytes, archive, &|p| p == LOCAL_TGZ)?;
    if members.iter().any(|m| m.path == LOCAL_TGZ_ENCRYPTED) {
        return Err(ConfigProblem::Encrypted {
            archive: archive.to_string(),
        });
    }
    let local = members
        .into_iter()
        .find(|m| m.path == LOCAL_TGZ)
        .and_then(|m| m.data)
        .ok_or_else(|| ConfigProblem::NoLocalTgz {
            archive: archive.to_string(),
        })?;
    let inner = format!("{LOCAL_TGZ} in {archive}");
    let files = archive::read(&local, &inner, &|p| p == ESX_CONF)?;
    let conf = files
        .iter()
        .find(|m| m.path == ESX_CONF)
        .and_then(|m| m.data.as_deref())
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    Ok(HostConfig {
        host: esx_conf_value(&conf, "/adv/Misc/HostName"),
        system_uuid: esx_conf_value(&conf, "/system/uuid"),
        files: files.iter().filter(|m| m.is_file).count(),
    })
}

/// The value of `key` in esx.conf's `key = "value"` lines, unquoted;
/// `None` when missing or empty.
fn esx_conf_value(conf: &str, key: &str) -> Option<String> {
    conf.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::config::archive::tests::tgz;

    fn state(conf: &str) -> Vec<u8> {
        let local = tgz(&[
            ("etc/hosts", b"127.0.0.1 localhost\n"),
            ("etc/vmware/esx.conf", conf.as_bytes()),
        ]);
        tgz(&[("local.tgz", &local)])
    }

    #[test]
    fn finds_host_and_uuid_in_esx_conf() {
        let conf = "/adv/Net/X = \"1\"\n/adv/Misc/HostName = \"esx01.lab\"\n\
                    /system/uuid = \"4a7c-01\"\n";
        let host = read(&state(conf), "state.tgz").unwrap();
        assert_eq!(host.host.as_deref(), Some("esx01.lab"));
        assert_eq!(host.system_uuid.as_deref(), Some("4a7c-01"));
        assert_eq!(host.files, 2);
        let unnamed = read(&state("/adv/Misc/HostName = \"\"\n"), "s").unwrap();
        assert_eq!((unnamed.host, unnamed.system_uuid), (None, None));
    }

    #[test]
    fn refuses_what_is_not_a_readable_configuration() {
        let encrypted = tgz(&[("encryption.info", b"x"), ("local.tgz.ve", b"y")]);
        let e = read(&encrypted, "state.tgz").unwrap_err();
        assert!(matches!(e, ConfigProblem::Encrypted { .. }), "{e}");
        let e = read(&tgz(&[("etc/hosts", b"")]), "state.tgz").unwrap_err();
        assert!(matches!(e, ConfigProblem::NoLocalTgz { .. }), "{e}");
        let broken = tgz(&[("local.tgz", b"not gzip at all")]);
        let e = read(&broken, "state.tgz").unwrap_err().to_string();
        assert!(e.starts_with("local.tgz in state.tgz: "), "{e}");
    }
}
