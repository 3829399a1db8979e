//! The wasm runtime's test fixture: `berth-test-guest` from wasm/guests, a WASI
//! preview 1 module whose behaviour its first argument picks (echo, loop, exit N,
//! stderr, write, read, env, args, pwd, alloc, trap; and a `greet` export).

use std::path::PathBuf;

/// The test guest as a core module (WASI preview 1), built by tests/build.rs.
pub fn test_guest() -> PathBuf {
    PathBuf::from(env!("BERTH_TEST_GUEST"))
}

/// The same program as a component (WASI preview 2).
pub fn test_component() -> PathBuf {
    PathBuf::from(env!("BERTH_TEST_COMPONENT"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_guest_is_a_wasm_module() {
        let path = super::test_guest();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.starts_with(b"\0asm"),
            "{} is not a wasm module",
            path.display()
        );
        let component = std::fs::read(super::test_component()).unwrap();
        assert!(
            component.starts_with(b"\0asm\x0d\x00\x01\x00"),
            "not a component"
        );
    }
}
