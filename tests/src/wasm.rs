//! The wasm runtime's test fixture: `berth-test-guest` from wasm/guests, a WASI
//! preview 1 module whose behaviour its first argument picks (echo, loop, exit N,
//! stderr, write, read, env, args, pwd, alloc, trap; and a `greet` export).

use std::path::PathBuf;

/// The test guest module, built by tests/build.rs.
pub fn test_guest() -> PathBuf {
    PathBuf::from(env!("BERTH_TEST_GUEST"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_guest_is_a_wasm_module() {
        let path = super::test_guest();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.starts_with(b"\0asm"), "{} is not a wasm module", path.display());
    }
}
