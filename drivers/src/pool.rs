//! A pool of frame buffers: in steady state a source reuses the buffers its
//! consumers have released instead of allocating a new frame's worth each time.

use std::sync::Arc;

/// Fixed-size buffers recycled once every consumer has dropped its reference.
#[derive(Debug)]
pub struct BufferPool {
    buf_len: usize,
    max_buffers: usize,
    buffers: Vec<Arc<Vec<u8>>>,
    allocations: u64,
}

impl BufferPool {
    /// A pool of at most `max_buffers` buffers of `buf_len` bytes each.
    pub fn new(buf_len: usize, max_buffers: usize) -> Self {
        Self {
            buf_len,
            max_buffers: max_buffers.max(1),
            buffers: Vec::new(),
            allocations: 0,
        }
    }

    /// A pool of `max_buffers` buffers of `buf_len` bytes, all allocated and paged
    /// in now: a source of fixed-size frames holds its worst case from the start,
    /// so its memory does not creep up in steps later (a pool only grows when
    /// every buffer is in flight, which a loaded machine reaches now and then).
    pub fn preallocated(buf_len: usize, max_buffers: usize) -> Self {
        let mut pool = Self::new(buf_len, max_buffers);
        for _ in 0..pool.max_buffers {
            let mut buf = vec![0u8; buf_len];
            // A zeroed allocation is only mapped when written: touch every page
            // (through `black_box`, so the stores of zero into memory known to be
            // zero are not optimised away).
            let pages = std::hint::black_box(&mut buf);
            for i in (0..pages.len()).step_by(4096) {
                pages[i] = 0;
            }
            pool.buffers.push(Arc::new(buf));
            pool.allocations += 1;
        }
        pool
    }

    /// Bytes held by the pool's buffers (their capacity).
    pub fn bytes(&self) -> usize {
        self.buffers.iter().map(|b| b.capacity()).sum()
    }

    /// A buffer no consumer holds any more, to be filled and shared. Returns `None`
    /// when all `max_buffers` are still in use downstream: the caller must drop the
    /// frame (consumers are behind) rather than grow memory without bound.
    pub fn acquire(&mut self) -> Option<&mut Arc<Vec<u8>>> {
        let free = self
            .buffers
            .iter()
            .position(|b| Arc::strong_count(b) == 1 && Arc::weak_count(b) == 0);
        let idx = match free {
            Some(i) => i,
            None if self.buffers.len() < self.max_buffers => {
                self.buffers.push(Arc::new(vec![0; self.buf_len]));
                self.allocations += 1;
                self.buffers.len() - 1
            }
            None => return None,
        };
        self.buffers.get_mut(idx)
    }

    /// Fills a free buffer with `fill` and hands it out shared, or `None` when every
    /// buffer is held downstream. The buffer keeps its capacity between uses, so
    /// variable-size contents (access units) stop allocating once the largest fits.
    pub fn fill(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Option<Arc<Vec<u8>>> {
        let slot = self.acquire()?;
        fill(Arc::get_mut(slot)?);
        Some(Arc::clone(slot))
    }

    /// Size of a fresh buffer.
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    /// How many buffers were ever allocated (stays flat in steady state).
    pub fn allocations(&self) -> u64 {
        self.allocations
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reuses_released_buffers() {
        let mut pool = BufferPool::new(16, 2);
        let a = pool.acquire().map(|b| b.clone());
        assert!(a.is_some());
        let b = pool.acquire().map(|b| b.clone());
        assert!(b.is_some());
        // Both held downstream: the pool is exhausted rather than growing.
        assert!(pool.acquire().is_none());
        drop(a);
        assert!(pool.acquire().is_some());
        assert_eq!(pool.allocations(), 2);
    }

    #[test]
    fn a_preallocated_pool_never_allocates_again() {
        let mut pool = BufferPool::preallocated(10_000, 3);
        assert_eq!((pool.allocations(), pool.bytes()), (3, 30_000));
        let held: Vec<_> = (0..3).filter_map(|_| pool.fill(|v| v[0] = 7)).collect();
        assert_eq!(held.len(), 3);
        assert!(pool.fill(|_| {}).is_none(), "all three held downstream");
        drop(held);
        assert!(pool.fill(|_| {}).is_some());
        assert_eq!(pool.allocations(), 3);
    }

    #[test]
    fn fill_reuses_capacity_for_variable_sizes() {
        let mut pool = BufferPool::new(0, 1);
        let a = pool.fill(|v| v.extend_from_slice(&[1, 2, 3])).unwrap();
        assert_eq!(*a, [1, 2, 3]);
        assert!(pool.fill(|_| {}).is_none(), "held downstream");
        let ptr = a.as_ptr();
        drop(a);
        let b = pool
            .fill(|v| {
                v.clear();
                v.extend_from_slice(&[9, 8]);
            })
            .unwrap();
        assert_eq!(*b, [9, 8]);
        assert_eq!(b.as_ptr(), ptr, "same storage, no new allocation");
        assert_eq!(pool.allocations(), 1);
    }
}
