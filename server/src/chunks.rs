//! Async byte streams (request bodies, downloads) meeting the engine's blocking
//! readers: a task sends the chunks through a small channel and engine code running
//! in `spawn_blocking` reads them with `Read`, so large uploads stream instead of
//! sitting in memory.

use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

pub struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    buf: Bytes,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChunkReader {
        ChunkReader { rx, buf: Bytes::new() }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}
