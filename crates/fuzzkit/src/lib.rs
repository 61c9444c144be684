//! What the fuzz harnesses of the workspace share (a test-only crate, never a dependency of a
//! library): mutators that turn real inputs into hostile ones, a runner bounded by cases or by
//! time, and an allocation meter.
//!
//! Why not libFuzzer: `cargo fuzz` needs a nightly toolchain and this project builds on stable
//! only. proptest gives what matters on stable: random generation, shrinking of a failing input
//! to a small one, and reproducible runs. The strategies here are byte-level mutations of seed
//! inputs (bit flips, byte overwrites with values that mean something to the formats,
//! truncation, deletion, insertion, splicing of two seeds, length fields blown up to huge
//! values) plus plain random bytes, because a decoder meets mostly *almost* valid input.
//!
//! Budget: `cargo test` runs each target for [`DEFAULT_CASES`] cases with a fixed seed (quick,
//! and the same cases every time). `FUZZ_SECONDS=N` runs each target for N seconds with fresh
//! random seeds, round after round; `FUZZ_CASES=N` sets the cases of a plain run. Every target
//! prints one line `fuzz <target>: <cases> cases, <findings> findings, <secs>s` on stderr and, when
//! `FUZZ_REPORT` names a file, appends it there (`scripts/fuzz.sh` collects them). A failing case
//! is shrunk and printed as hex, ready to become a named regression test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestError, TestRng, TestRunner};

/// Cases per target in a plain `cargo test` run.
pub const DEFAULT_CASES: u32 = 256;
/// Cases per round when running against the clock.
const ROUND_CASES: u32 = 512;

/// Bytes that print as hex (a shrunk failing input is pasted into a regression test from this).
#[derive(Clone, PartialEq, Eq)]
pub struct Input(pub Vec<u8>);

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Input({} bytes: \"", self.0.len())?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, "\")")
    }
}

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Lowercase hex to bytes (for regression inputs copied from a finding). Panics on bad hex:
/// it is only ever given literals.
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex literal")).collect()
}

/// One edit of a seed.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Remove(Index, usize),
    Insert(Index, Vec<u8>),
    /// A run of the input copied to another place in it.
    Repeat(Index, Index, usize),
    /// A run of another seed inserted here.
    Splice(Index, Index, Index, usize),
    /// A length-like field overwritten with a huge value.
    Blowup(Index, usize),
}

/// Values that mean something to the formats in this workspace: typedstream markers (0x81–0x86,
/// 0x92), plist object nibbles (0xa_, 0xd_, 0x_f), DER long-form lengths (0x8_), varint
/// continuation bits, and the edges of a byte.
const INTERESTING: [u8; 16] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0x86, 0x92, 0xa0, 0xd0, 0x0f, 0x4f, 0xfe, 0xff];

/// Encodings of huge lengths: a uleb128 varint of 2^32-1 and of 2^63, u32 big- and little-endian
/// maxima, a DER long-form length of 2^32-1, a u16 maximum.
const BLOWUPS: [&[u8]; 6] = [
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x84, 0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff],
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), prop_oneof![proptest::sample::select(&INTERESTING[..]), any::<u8>()]).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), any::<Index>(), 1usize..64).prop_map(|(a, b, n)| Mutation::Repeat(a, b, n)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), 1usize..256).prop_map(|(s, a, b, n)| Mutation::Splice(s, a, b, n)),
        2 => (any::<Index>(), 0..BLOWUPS.len()).prop_map(|(i, k)| Mutation::Blowup(i, k)),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Mutation], seeds: &[Vec<u8>]) -> Vec<u8> {
    for edit in edits {
        let len = data.len();
        match edit {
            Mutation::FlipBit(i, bit) if len > 0 => data[i.index(len)] ^= 1 << bit,
            Mutation::SetByte(i, v) if len > 0 => data[i.index(len)] = *v,
            Mutation::Truncate(i) => data.truncate(i.index(len + 1)),
            Mutation::Remove(i, n) if len > 0 => {
                let at = i.index(len);
                data.drain(at..(at + n).min(len));
            }
            Mutation::Insert(i, bytes) => {
                let at = i.index(len + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Repeat(from, to, n) if len > 0 => {
                let start = from.index(len);
                let piece = data[start..(start + n).min(len)].to_vec();
                let at = to.index(len + 1);
                data.splice(at..at, piece);
            }
            Mutation::Splice(seed, from, to, n) => {
                let other = &seeds[seed.index(seeds.len())];
                if !other.is_empty() {
                    let start = from.index(other.len());
                    let at = to.index(len + 1);
                    data.splice(at..at, other[start..(start + n).min(other.len())].iter().copied());
                }
            }
            Mutation::Blowup(i, kind) => {
                let value = BLOWUPS[*kind];
                let at = i.index(len + 1);
                let end = (at + value.len()).min(len);
                data.splice(at..end, value.iter().copied());
            }
            _ => {}
        }
    }
    data
}

/// Inputs made from `seeds`: mostly one seed with one to four mutations, sometimes a seed as it
/// is, sometimes random bytes. Shrinks towards fewer mutations, i.e. towards the seed.
pub fn mutated(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Input> {
    assert!(!seeds.is_empty(), "a mutator needs at least one seed");
    let seeds = std::sync::Arc::new(seeds);
    let from_seed = {
        let seeds = seeds.clone();
        (any::<Index>(), proptest::collection::vec(mutation(), 0..5))
            .prop_map(move |(i, edits)| Input(apply(seeds[i.index(seeds.len())].clone(), &edits, &seeds)))
    };
    prop_oneof![
        12 => from_seed,
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(Input),
    ]
    .boxed()
}

/// How long or how often each target runs (see the crate docs).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub cases: u32,
    pub time: Option<Duration>,
}

impl Budget {
    /// From `FUZZ_SECONDS` and `FUZZ_CASES` (default [`DEFAULT_CASES`], no time budget).
    pub fn from_env() -> Budget {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v > 0.0);
        Budget { cases: num("FUZZ_CASES").map(|c| c as u32).unwrap_or(DEFAULT_CASES), time: num("FUZZ_SECONDS").map(Duration::from_secs_f64) }
    }
}

fn name_seed(target: &str, round: u64) -> [u8; 32] {
    // FNV-1a of the name, spread over the seed: fixed per target in plain runs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(h ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64).to_le_bytes());
    }
    seed
}

/// Runs `test` on inputs from `strategy` within the [`Budget`] of the environment, prints the
/// target's line, and panics with the shrunk input if a case failed (or panicked).
pub fn run<S>(target: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let budget = Budget::from_env();
    let started = Instant::now();
    // Against the clock every round gets a fresh seed; a plain run is the same every time.
    let clock_seed = budget.time.map(|_| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0));
    let cases = std::sync::atomic::AtomicU64::new(0);
    let counted = |value: S::Value| {
        cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        test(value)
    };
    let mut round: u64 = 0;
    let mut failure = None;
    loop {
        let n = if budget.time.is_some() { ROUND_CASES } else { budget.cases };
        let config = Config { cases: n, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
        let seed = name_seed(target, clock_seed.unwrap_or(0) ^ round);
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let outcome = runner.run(&strategy, counted);
        round += 1;
        match outcome {
            Ok(()) => {}
            Err(TestError::Fail(reason, value)) => {
                failure = Some(format!("{reason}\nminimal failing input: {value:?}"));
                break;
            }
            Err(TestError::Abort(reason)) => {
                failure = Some(format!("aborted: {reason}"));
                break;
            }
        }
        match budget.time {
            Some(limit) if started.elapsed() < limit => continue,
            _ => break,
        }
    }
    // Shrinking runs the test again on smaller inputs: those runs are counted too.
    let cases = cases.into_inner();
    let line = format!("fuzz {target}: {cases} cases, {} findings, {:.1}s", usize::from(failure.is_some()), started.elapsed().as_secs_f64());
    eprintln!("{line}");
    if let Ok(path) = std::env::var("FUZZ_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
            if let Some(failure) = &failure {
                let _ = writeln!(f, "FINDING {target}: {failure}");
            }
        }
    }
    if let Some(failure) = failure {
        panic!("fuzz target {target} found a failing input: {failure}");
    }
}

/// A global allocator that counts, per thread, the bytes live and the most live at once since
/// the last [`measure`]. Install it in a harness with
/// `#[global_allocator] static METER: fuzzkit::Meter = fuzzkit::Meter;`.
pub struct Meter;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

// SAFETY: every call is passed to `System` unchanged; the counting touches only const-initialized
// thread-locals without destructors, which neither allocate nor unwind.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes it had allocated at once on this thread
/// (meaningful only with [`Meter`] installed; work on other threads is not seen).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, (peak - base).max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds_on_empty_and_short_inputs() {
        let strategy = mutated(vec![Vec::new(), vec![1], b"hello".to_vec()]);
        let mut runner =
            TestRunner::new_with_rng(Config { cases: 4000, failure_persistence: None, ..Config::default() }, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let mut lengths = std::collections::BTreeSet::new();
        for _ in 0..4000 {
            lengths.insert(strategy.new_tree(&mut runner).unwrap().current().len());
        }
        assert!(lengths.contains(&0) && lengths.len() > 20, "mutations must shorten and grow inputs: {lengths:?}");
        assert_eq!(unhex("00ff 10"), vec![0, 255, 16]);
    }

    #[global_allocator]
    static METER: Meter = Meter;

    #[test]
    fn the_meter_sees_the_peak_not_the_end() {
        let (len, peak) = measure(|| {
            let big = vec![7u8; 1 << 20];
            let small = [1u8; 10];
            drop(big);
            small.len()
        });
        assert_eq!(len, 10);
        assert!(((1 << 20)..(1 << 20) + 4096).contains(&peak), "peak {peak}");
        let (_, nothing) = measure(|| 1 + 1);
        assert_eq!(nothing, 0);
    }
}
#[cfg(test)]
mod sanity {
    #[test]
    #[should_panic(expected = "found a failing input")]
    fn a_failing_property_is_found_and_shrunk() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        super::run("sanity", super::mutated(vec![vec![1, 2, 3]]), |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            proptest::prop_assert!(i.len() < 10);
            Ok(())
        });
    }
}
