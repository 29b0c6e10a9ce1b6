//! gzip-compressed tar archives — state.tgz, the local.tgz inside it,
//! configuration bundles, oem.tgz — read to their end with flate2 and
//! tar, so that damage anywhere is found before the archive is used.

use std::io::{self, Read};
use std::path::{Component, Path};

use flate2::bufread::GzDecoder;

use crate::error::ConfigProblem;

/// Most bytes an archive may unpack to: a host's configuration is a few
/// MiB, an oem.tgz of drivers tens.
pub const MAX_UNPACKED: u64 = 512 << 20;
/// Most bytes of one member kept in memory.
const MAX_KEPT: u64 = 64 << 20;

/// A member of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its path: relative, `/`-separated, without a leading `./`.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// Its content, when the caller asked for it.
    pub data: Option<Vec<u8>>,
}

/// Reads the .tgz `bytes` (named `archive` in errors) to its very end and
/// checks it: the gzip stream's CRC-32 and length and nothing after it,
/// the tar headers' checksums and every member complete, every path (and
/// hard link target) relative and inside the archive. Returns the
/// members, with the content of the regular files `keep` names.
pub fn read(
    bytes: &[u8],
    archive: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<Member>, ConfigProblem> {
    let mut tar = tar::Archive::new(Inflate {
        gz: GzDecoder::new(bytes),
        unpacked: 0,
        broken: None,
        over: false,
    });
    let members = members(&mut tar, archive, keep);
    let mut inflate = tar.into_inner();
    // tar stops at its end-of-archive blocks: the rest of the stream (its
    // padding, then the CRC-32 and length) is read to check them.
    let members = members.and_then(|m| {
        io::copy(&mut inflate, &mut io::sink())
            .map(|_| m)
            .map_err(|e| tar_problem(archive, e))
    });
    match members {
        Err(e) => Err(inflate.blame(archive).unwrap_or(e)),
        Ok(_) if !inflate.gz.into_inner().is_empty() => Err(ConfigProblem::Trailing {
            archive: archive.to_string(),
        }),
        Ok(members) => Ok(members),
    }
}

/// Every member of `tar`, checked, with the content `keep` asks for.
fn members<R: Read>(
    tar: &mut tar::Archive<R>,
    archive: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<Member>, ConfigProblem> {
    let bad = |e| tar_problem(archive, e);
    let unsafe_path = |path: &Path| ConfigProblem::UnsafePath {
        archive: archive.to_string(),
        path: path.to_string_lossy().into_owned(),
    };
    let mut out = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let path = relative(&raw).ok_or_else(|| unsafe_path(&raw))?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            relative(&target).ok_or_else(|| unsafe_path(&target))?;
        }
        let bytes = entry.size();
        let wanted = kind.is_file() && keep(&path);
        if wanted && bytes > MAX_KEPT {
            return Err(ConfigProblem::TooLarge {
                archive: format!("{path} in {archive}"),
                bytes,
                limit: MAX_KEPT,
            });
        }
        // The tar reader ends a member early, without an error, where the
        // stream ends: every member is read, and its length checked.
        let mut data = Vec::new();
        let read = if wanted {
            entry.read_to_end(&mut data).map(|n| n as u64)
        } else {
            io::copy(&mut entry, &mut io::sink())
        }
        .map_err(bad)?;
        if read != bytes {
            return Err(bad(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("member {path:?} is cut short ({read} of {bytes} bytes)"),
            )));
        }
        out.push(Member {
            path,
            bytes,
            is_file: kind.is_file(),
            data: wanted.then_some(data),
        });
    }
    Ok(out)
}

/// A [`ConfigProblem::Tar`]. The tar reader quotes the bytes it could not
/// read, which may be anything: its message is kept to one short line of
/// printable text.
fn tar_problem(archive: &str, source: io::Error) -> ConfigProblem {
    const MOST: usize = 100;
    let text = source.to_string();
    let mut told: String = text
        .chars()
        .take(MOST)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().count() > MOST {
        told.push('…');
    }
    ConfigProblem::Tar {
        archive: archive.to_string(),
        source: io::Error::new(source.kind(), told),
    }
}

/// `path` as a relative `/`-separated path without `.` parts, or `None`
/// when it is absolute or climbs out with `..`. (`./` alone, the entry of
/// the archive's top directory, is the empty path.)
fn relative(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => parts.push(p.to_string_lossy()),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The gzip stream, decompressed, remembering why it failed (so that a
/// damaged stream is told from a damaged tar archive) and stopping at
/// [`MAX_UNPACKED`].
struct Inflate<'a> {
    gz: GzDecoder<&'a [u8]>,
    unpacked: u64,
    broken: Option<io::Error>,
    over: bool,
}

impl Inflate<'_> {
    /// The decompressor's part in a failure, if it had one.
    fn blame(&mut self, archive: &str) -> Option<ConfigProblem> {
        let archive = archive.to_string();
        if self.over {
            return Some(ConfigProblem::Unpacked {
                archive,
                limit: MAX_UNPACKED,
            });
        }
        self.broken
            .take()
            .map(|source| ConfigProblem::Gzip { archive, source })
    }
}

impl Read for Inflate<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.gz.read(buf) {
            Ok(n) => {
                self.unpacked += n as u64;
                if self.unpacked > MAX_UNPACKED {
                    self.over = true;
                    return Err(io::Error::other("unpacks to too much"));
                }
                Ok(n)
            }
            Err(e) => {
                let told = io::Error::new(e.kind(), e.to_string());
                self.broken = Some(e);
                Err(told)
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// A .tgz of `files` (path, content), as GNU tar writes one.
    pub fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Default::default()));
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    /// A .tgz whose one member has the raw `name` (which tar::Builder
    /// would refuse to write).
    fn tgz_named(name: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.push(b'x');
        raw.resize(512 * 4, 0);
        let mut gz = GzEncoder::new(Vec::new(), Default::default());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn reads_members_and_keeps_what_is_asked() {
        let bytes = tgz(&[("./etc/hosts", b"127.0.0.1"), ("local.tgz", b"abc")]);
        let members = read(&bytes, "state.tgz", &|p| p == "local.tgz").unwrap();
        let got: Vec<_> = members
            .iter()
            .map(|m| (m.path.as_str(), m.bytes, m.data.as_deref()))
            .collect();
        assert_eq!(
            got,
            [("etc/hosts", 9, None), ("local.tgz", 3, Some(&b"abc"[..]))]
        );
    }

    #[test]
    fn damage_is_named_where_it_is() {
        let good = tgz(&[("a", &[7; 5000])]);
        let mut crc = good.clone();
        let n = crc.len();
        crc[n - 8] ^= 1; // the CRC-32
        let e = read(&crc, "x.tgz", &|_| false).unwrap_err();
        assert!(matches!(e, ConfigProblem::Gzip { .. }), "{e}");
        let cut = &good[..good.len() - 4]; // the length is missing
        let e = read(cut, "x.tgz", &|_| false).unwrap_err();
        assert!(matches!(e, ConfigProblem::Gzip { .. }), "{e}");
        let mut trailing = good.clone();
        trailing.extend(b"junk");
        let e = read(&trailing, "x.tgz", &|_| false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.tgz: data follows the end of its gzip stream"
        );
        let mut gz = GzEncoder::new(Vec::new(), Default::default());
        gz.write_all(&[0x55; 1024]).unwrap();
        let not_tar = gz.finish().unwrap();
        let e = read(&not_tar, "x.tgz", &|_| false).unwrap_err();
        assert!(matches!(e, ConfigProblem::Tar { .. }), "{e}");
        let mut gz = GzEncoder::new(Vec::new(), Default::default());
        gz.write_all(&[0xc3; 1024]).unwrap();
        let garbage = read(&gz.finish().unwrap(), "x.tgz", &|_| false).unwrap_err();
        let text = garbage.to_string();
        assert!(text.chars().count() < 180, "{text}");
        assert!(
            text.chars()
                .all(|c| c.is_ascii_graphic() || c == ' ' || c == '…'),
            "{text}"
        );
    }

    #[test]
    fn absolute_and_climbing_paths_are_refused() {
        for name in [&b"/etc/passwd"[..], b"../x", b"a/../../x"] {
            let e = read(&tgz_named(name), "oem.tgz", &|_| false).unwrap_err();
            assert!(
                matches!(e, ConfigProblem::UnsafePath { .. }),
                "{name:?}: {e}"
            );
        }
        assert!(read(&tgz_named(b"a/./b"), "oem.tgz", &|_| false).is_ok());
    }
}
