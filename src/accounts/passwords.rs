//! Password hashing: the one place that runs Argon2.
//!
//! Parameters: Argon2id, version 0x13, m = 19 MiB (19,456 KiB), t = 2, p = 1 — OWASP's baseline
//! recommendation for Argon2id (Password Storage Cheat Sheet). It costs about 15 ms of one core in
//! a release build and 19 MiB of memory while it runs. Stored hashes carry their own parameters
//! (PHC strings), so raising them later keeps old hashes verifiable.
//!
//! Bounds: at most `permits()` computations (the number of cores) run at once, process-wide, each
//! on tokio's blocking pool; callers beyond that wait in FIFO order for a permit, so a burst of
//! sign-ups or logins costs queueing time, never more than `permits() × 19 MiB` of memory. The
//! permit moves into the blocking job, so a caller that goes away (a dropped request) still holds
//! it until the computation it started has finished.
//!
//! Memory return: the server's allocator hands blocks of 4 MiB or more, Argon2's among them, to
//! glibc's malloc (`crate::alloc`). glibc raises its mmap threshold after the first large block is freed,
//! so later 19 MiB blocks would come from (and stay in) its arenas — one per thread that hashed,
//! gigabytes after a burst. Before the first hash we pin the threshold with `mallopt`, which
//! also turns the dynamic adjustment off: every block of 4 MiB or more is mmapped and unmapped on
//! free, so the memory goes back to the OS when a hash finishes.
//!
//! Timing: `verify` does the same work whether or not the account exists (a missing or unreadable
//! stored hash is replaced by a fixed dummy hash with the same parameters), so response time does
//! not tell whether an email is registered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::TryRngCore;
use tokio::sync::Semaphore;

/// Memory per hash, in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const T_COST: u32 = 2;
/// Lanes (one thread per hash: parallelism comes from hashing several passwords at once).
pub const P_COST: u32 = 1;

/// Allocations at least this large are always mmapped (and so returned to the OS on free).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: usize = crate::alloc::LARGE;

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How many hashes may run at once: the number of cores available to the process.
pub fn permits() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    return_large_blocks_to_the_os();
    Arc::new(Semaphore::new(permits()))
});

/// Computations running now, and the most seen at once (for the tests).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Running;

impl Running {
    fn enter() -> Running {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks_to_the_os() {
    // SAFETY: mallopt only changes allocator tuning; glibc takes its own lock.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
    if ok != 1 {
        tracing::warn!("mallopt(M_MMAP_THRESHOLD) failed; password hashing memory may not be returned to the OS");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks_to_the_os() {}

/// Runs `work` on the blocking pool once a permit is free; the permit lives as long as the work.
async fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let permit = PERMITS.clone().acquire_owned().await?;
    let out = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _running = Running::enter();
        work()
    })
    .await?;
    Ok(out)
}

fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = argon2().hash_password(password, &salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(hash.to_string())
}

/// A hash of a random password nobody knows, with the current parameters, computed once.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.try_fill_bytes(&mut random).expect("the OS random source works");
        hash_now(&random).expect("hashing a random password works")
    })
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: String) -> anyhow::Result<String> {
    bounded(move || hash_now(password.as_bytes())).await?
}

/// Checks a password against a stored hash. `stored = None` (no such account) or a hash that
/// cannot be read does the same work against the dummy hash and answers `false`.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    bounded(move || {
        let real = stored.as_deref().and_then(|s| PasswordHash::new(s).ok());
        let known = real.is_some();
        let hash = real.unwrap_or_else(|| PasswordHash::new(dummy_hash()).expect("the dummy hash parses"));
        let matches = argon2().verify_password(password.as_bytes(), &hash).is_ok();
        known && matches
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_than_permits_run_at_once() {
        let n = permits() * 3 + 2;
        let jobs: Vec<_> = (0..n).map(|i| tokio::spawn(hash(format!("password number {i}")))).collect();
        let mut hashes = Vec::new();
        for job in jobs {
            hashes.push(job.await.unwrap().unwrap());
        }
        let peak = PEAK.load(Ordering::SeqCst);
        assert!((1..=permits()).contains(&peak), "{peak} hashes ran at once; the bound is {}", permits());
        assert!(hashes.iter().all(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")), "{hashes:?}");
        assert!(verify("password number 3".into(), Some(hashes[3].clone())).await.unwrap());
        assert!(!verify("password number 4".into(), Some(hashes[3].clone())).await.unwrap());
    }

    #[tokio::test]
    async fn verify_accepts_the_right_password_only() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(verify("correct horse battery".into(), Some(stored.clone())).await.unwrap());
        assert!(!verify("correct horse battery!".into(), Some(stored.clone())).await.unwrap());
        assert!(!verify(String::new(), Some(stored)).await.unwrap());
        // No account, or an unreadable stored hash: always false, after the same work.
        assert!(!verify("correct horse battery".into(), None).await.unwrap());
        assert!(!verify("correct horse battery".into(), Some("not a hash".into())).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_caller_keeps_its_permit_until_the_work_ends() {
        // Start more hashes than permits and cancel them once the first ones are running: the
        // permits must stay with the running jobs, so the hashes started afterwards still wait.
        let abandoned: Vec<_> = (0..permits() * 2).map(|i| tokio::spawn(hash(format!("abandoned {i}")))).collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        for job in &abandoned {
            job.abort();
        }
        let later: Vec<_> = (0..permits() + 1).map(|i| tokio::spawn(hash(format!("later {i}")))).collect();
        for job in later {
            job.await.unwrap().unwrap();
        }
        let peak = PEAK.load(Ordering::SeqCst);
        assert!(peak <= permits(), "{peak} hashes ran at once; the bound is {}", permits());
    }
}
