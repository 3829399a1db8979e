//! `--platform`: the `os[/arch[/variant]]` a client asks an image to be for, read as
//! containerd reads it (architecture aliases made one, the host's architecture where
//! none is given), and matched against an image (`docker run`, `create`) or an
//! index's entries (`docker pull`).

use std::fmt;

use crate::error::{Error, Result};

/// Architecture names a one-part platform (`--platform arm64`) may be.
const ARCHITECTURES: &[&str] = &[
    "amd64", "x86_64", "x86-64", "arm64", "aarch64", "arm", "armhf", "armel", "386", "i386",
    "ppc64le", "s390x", "riscv64", "mips64le",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Empty: any variant.
    pub variant: String,
}

impl Platform {
    /// Reads `os[/arch[/variant]]`, or a lone architecture, with Docker's error for a
    /// malformed one.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(Error::InvalidArgument(format!(
                "{s:?}: unknown platform format, expected os[/arch[/variant]]"
            )));
        }
        if let Some(bad) = parts.iter().find(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(Error::InvalidArgument(format!(
                "{bad:?} is an invalid component of {s:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\""
            )));
        }
        let parts: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (os, arch, variant) = match parts.as_slice() {
            [one] if ARCHITECTURES.contains(&one.as_str()) => {
                ("linux".to_string(), one.as_str(), "")
            }
            [os] => (os.clone(), "", ""),
            [os, arch] => (os.clone(), arch.as_str(), ""),
            [os, arch, variant] => (os.clone(), arch.as_str(), variant.as_str()),
            [] => unreachable!("split yields at least one part"),
            _ => unreachable!("at most three parts, checked above"),
        };
        let host = crate::archive::host_arch();
        let (architecture, variant) =
            normalize(if arch.is_empty() { &host } else { arch }, variant);
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// The platform of an OCI platform object (the API's JSON-encoded `platform`
    /// query of image inspect, history, save and load).
    pub fn from_json(json: &str) -> Result<Platform> {
        let p: crate::manifest::Platform = serde_json::from_str(json)
            .map_err(|e| Error::InvalidArgument(format!("invalid platform {json:?}: {e}")))?;
        if p.os.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "invalid platform {json:?}: it names no os"
            )));
        }
        let mut s = p.os.clone();
        for part in [&p.architecture, &p.variant]
            .into_iter()
            .filter(|x| !x.is_empty())
        {
            s.push('/');
            s.push_str(part);
        }
        Platform::parse(&s)
    }

    /// A WebAssembly platform (`wasi/wasm`, `wasip1/wasm`, …): any host runs it.
    pub fn is_wasm(&self) -> bool {
        is_wasi(&self.os) || self.architecture == "wasm"
    }

    /// Whether an image of this `os`/`architecture` is one for this platform. A wasm
    /// platform takes any image: it is how a user says "run its module with wasmtime",
    /// which an image made by `docker import` (recorded as linux) needs; an image
    /// whose config names no platform counts as the host's.
    pub fn matches_image(&self, os: &str, architecture: &str) -> bool {
        if self.is_wasm() {
            return true;
        }
        let os = if os.is_empty() {
            "linux".to_string()
        } else {
            os.to_ascii_lowercase()
        };
        let architecture = if architecture.is_empty() {
            crate::archive::host_arch()
        } else {
            architecture.to_ascii_lowercase()
        };
        let (arch, _) = normalize(&architecture, "");
        self.os == os && self.architecture == arch
    }

    /// Docker's words for an image (named `reference`) of `os`/`architecture` where
    /// this platform was asked for.
    pub fn mismatch(&self, reference: &str, os: &str, architecture: &str) -> String {
        format!("image with reference {reference} was found but does not match the specified platform: wanted {self}, actual: {os}/{architecture}")
    }

    /// Whether an index entry of this platform is one for this one (its variant too,
    /// when one was asked for).
    pub fn matches_entry(&self, entry: &crate::manifest::Platform) -> bool {
        let (arch, variant) = normalize(
            &entry.architecture.to_ascii_lowercase(),
            &entry.variant.to_ascii_lowercase(),
        );
        let os = entry.os.to_ascii_lowercase();
        let same_os = os == self.os || (is_wasi(&os) && is_wasi(&self.os));
        same_os && arch == self.architecture && (self.variant.is_empty() || variant == self.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

fn is_wasi(os: &str) -> bool {
    matches!(os, "wasi" | "wasip1" | "wasip2")
}

/// containerd's `normalizeArch`: one name per architecture, and the variant each
/// alias implies (`armhf` is arm v7); `v8` of arm64 and `v1` of amd64 are the default.
fn normalize(arch: &str, variant: &str) -> (String, String) {
    let v = |s: &str| {
        if s.is_empty() || s.starts_with('v') {
            s.to_string()
        } else {
            format!("v{s}")
        }
    };
    match arch {
        "i386" | "386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".into(),
            if variant == "v1" {
                String::new()
            } else {
                variant.into()
            },
        ),
        "aarch64" | "arm64" => (
            "arm64".into(),
            if matches!(variant, "8" | "v8") {
                String::new()
            } else {
                v(variant)
            },
        ),
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => (
            "arm".into(),
            if variant.is_empty() {
                "v7".into()
            } else {
                v(variant)
            },
        ),
        other => (other.into(), variant.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parses_as_containerd_does() {
        let host = crate::archive::host_arch();
        assert_eq!(p("linux").to_string(), format!("linux/{host}"));
        assert_eq!(p("Linux/X86_64").to_string(), "linux/amd64");
        assert_eq!(p("arm64").to_string(), "linux/arm64");
        assert_eq!(p("linux/aarch64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/6").to_string(), "linux/arm/v6");
        assert_eq!(p("wasi/wasm").to_string(), "wasi/wasm");
        for bad in [
            "",
            "linux/",
            "bogus//x",
            "linux/amd64/v2/x",
            "linux/am d64",
            "../x",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Platform::parse("bogus//x").unwrap_err().to_string(),
            r#""" is an invalid component of "bogus//x": platform specifier component must match "^[A-Za-z0-9_-]+$""#
        );
    }

    #[test]
    fn matches_images_and_index_entries() {
        let host = crate::archive::host_arch();
        assert!(p("linux").matches_image("linux", &host));
        assert!(p("linux/amd64").matches_image("linux", "x86_64"));
        assert!(!p("linux/arm64").matches_image("linux", "amd64"));
        assert!(!p("windows/amd64").matches_image("linux", "amd64"));
        assert!(!p("linux/amd64").matches_image("wasip1", "wasm"));
        assert!(
            p(&format!("linux/{host}")).matches_image("", ""),
            "a config without a platform is the host's"
        );
        assert!(p("wasi/wasm").matches_image("wasip1", "wasm"));
        assert!(
            p("wasi/wasm").matches_image("linux", "amd64"),
            "a module docker import recorded as linux"
        );
        let entry = |os: &str, architecture: &str, variant: &str| crate::manifest::Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.into(),
        };
        assert!(p("linux/arm64").matches_entry(&entry("linux", "arm64", "v8")));
        assert!(p("linux/arm").matches_entry(&entry("linux", "arm", "v7")));
        assert!(!p("linux/arm/v6").matches_entry(&entry("linux", "arm", "v7")));
        assert!(p("linux/amd64").matches_entry(&entry("linux", "amd64", "")));
        assert!(!p("linux/amd64").matches_entry(&entry("linux", "arm64", "")));
        assert!(p("wasi/wasm").matches_entry(&entry("wasip1", "wasm", "")));
    }
}
