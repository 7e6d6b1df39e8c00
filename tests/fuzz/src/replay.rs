//! The stable stand-in for libFuzzer, for machines without a nightly toolchain (`scripts/fuzz`
//! falls back to it): every target's seed corpus, then pseudo-random inputs (fresh bytes and
//! edits of the seeds) through the same checks. Not coverage-guided, so weaker than fuzzing,
//! but the same properties. `TENANTKIT_FUZZ_ITERATIONS` sets how many inputs each target gets
//! after its seeds (default 3000).

use std::{
    fs,
    panic::{AssertUnwindSafe, catch_unwind, resume_unwind},
    path::{Path, PathBuf},
};

use crate::TARGETS;

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = fs::read(&path).expect("a corpus file");
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{} holds no seeds", dir.display());
    seeds
}

/// xorshift64*: reproducible, and enough to stir bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the parsers care about, spliced in more often than chance would.
const INTERESTING: &[&[u8]] = &[
    b"=",
    b"-",
    b",",
    b"/",
    b"\\",
    b".",
    b"..",
    b"_",
    b"|",
    b"t=",
    b"v1=",
    b"bytes=",
    b"tk_",
    b"\0",
    b"\n",
    b" ",
    b"\xe2\x80\xae",
    b"\xff",
    b"18446744073709551616",
    b"0",
];

fn generated(rng: &mut Rng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    if rng.below(4) == 0 {
        return (0..rng.below(300)).map(|_| rng.next() as u8).collect();
    }
    let mut input = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if at < input.len() => input[at] ^= 1 << rng.below(8),
            1 if at < input.len() => input[at] = rng.next() as u8,
            2 if at < input.len() => {
                input.remove(at);
            }
            3 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(at..at, piece.iter().copied());
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())].1;
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.insert(at, rng.next() as u8),
        }
    }
    input
}

fn run(target: &str, check: fn(&[u8]), input: &[u8], what: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(input))) {
        // Write it to a file (`xxd -r -p`) to keep it in the corpus or replay it with libFuzzer.
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "{target} failed on {what} ({} bytes), hex: {hex}",
            input.len()
        );
        resume_unwind(panic);
    }
}

fn replay(target: &str) {
    let check = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .expect("a listed target");
    let iterations: usize = std::env::var("TENANTKIT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let seeds = seeds(target);
    for (path, seed) in &seeds {
        run(target, check, seed, &path.display().to_string());
    }
    let mut rng = Rng(target.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    for i in 0..iterations {
        let input = generated(&mut rng, &seeds);
        run(target, check, &input, &format!("generated input {i}"));
    }
    eprintln!(
        "{target}: {} seeds and {iterations} generated inputs passed",
        seeds.len()
    );
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(#[test] fn $target() { replay(stringify!($target)); })*
    };
}

replay_tests!(
    account_token,
    api_key,
    byte_range,
    file_cursor,
    file_name,
    folder,
    link_token,
    stripe_signature,
    tenant_cursor,
);

#[test]
fn every_fuzz_target_is_listed_and_seeded() {
    let mut binaries: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz_targets/")
        .map(|entry| {
            let path = entry.expect("an entry").path();
            path.file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    binaries.sort();
    let listed: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(binaries, listed);
    for name in listed {
        assert!(!seeds(name).is_empty());
    }
}
