//! Runtimes turn a [`RuntimeSpec`](crate::spec::RuntimeSpec) into a running process.
//! `linux` is the native one (namespaces, overlayfs, pty); a wasm runtime comes with
//! its own issue.

pub mod linux;
