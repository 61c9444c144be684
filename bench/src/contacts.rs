//! `contacts-bench`: how long does the bridge take to turn a big address book into its handle
//! map, and to look up every person of an account in it (issue 20: 10,000 cards against 5,000
//! handles)?
//!
//! The cards are generated (seeded) the way people's address books look: one to three numbers
//! per card in the formats people write ("(415) 555-0134", "+1 415 555 0134", "415.555.0134",
//! "1-415-555-0134", a UK number), an email on a third of them, a small photo on a tenth, and
//! one number in fifty shared by two cards (a conflict the rule decides). They are written as one
//! vCard 3.0 text, so the parser is measured too. The handles are what message sources give:
//! half of them numbers and addresses on the cards (canonical `tel:`/`mailto:` forms, or as
//! `chat.db` writes them), half numbers nobody has. The run fails if the matched count is not the
//! number of handles that are on cards.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use clap::Parser;
use contacts::{ContactBook, MatchOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[derive(Parser)]
#[command(name = "contacts-bench", about = "contact cards → handle map: vCard parse, ContactBook::build and lookups")]
struct Cli {
    #[arg(long, default_value_t = 10_000)]
    cards: usize,
    #[arg(long, default_value_t = 5_000)]
    handles: usize,
    /// Runs; the median and the fastest are reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

const AREAS: &[u32] = &[212, 312, 415, 503, 617, 702, 805, 917];

struct Generated {
    vcf: String,
    /// Handles to look up, and how many of them are on a card.
    handles: Vec<String>,
    on_cards: usize,
}

fn generate(cards: usize, handles: usize, seed: u64) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut vcf = String::with_capacity(cards * 200);
    let mut known: Vec<String> = Vec::new();
    let photo = base64_photo();
    for i in 0..cards {
        let _ = write!(vcf, "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{i}\r\nN:Family{i};Given{};;;\r\nFN:Given{} Family{i}\r\n", i % 97, i % 97);
        for k in 0..rng.gen_range(1..=3) {
            // Every 50th card shares its first number with the card before it.
            let n = if k == 0 && i % 50 == 1 { (i - 1) * 3 } else { i * 3 + k };
            let (area, line) = (AREAS[n % AREAS.len()], 1_000_000 + n as u32);
            let (mid, last) = (line / 10_000 % 800 + 200, line % 10_000);
            let written = match rng.gen_range(0..5) {
                0 => format!("({area}) {mid}-{last:04}"),
                1 => format!("+1 {area} {mid} {last:04}"),
                2 => format!("{area}.{mid}.{last:04}"),
                3 => format!("1-{area}-{mid}-{last:04}"),
                _ => format!("+1{area}{mid}{last:04}"),
            };
            let _ = write!(vcf, "item{k}.TEL;type=CELL:{written}\r\n");
            known.push(format!("tel:+1{area}{mid}{last:04}"));
        }
        if i % 3 == 0 {
            let _ = write!(vcf, "EMAIL;type=INTERNET:Given{}.Family{i}@Example.com\r\n", i % 97);
            known.push(format!("mailto:given{}.family{i}@example.com", i % 97));
        }
        if i % 10 == 0 {
            let _ = write!(vcf, "PHOTO;ENCODING=b;TYPE=JPEG:{photo}\r\n");
        }
        vcf.push_str("END:VCARD\r\n");
    }
    known.sort();
    known.dedup();
    let mut out = Vec::with_capacity(handles);
    let on_cards = handles / 2;
    for _ in 0..on_cards {
        let h = &known[rng.gen_range(0..known.len())];
        // A third as chat.db writes them (no scheme).
        out.push(if rng.gen_range(0..3) == 0 { h.trim_start_matches("tel:").to_string() } else { h.clone() });
    }
    for i in 0..handles - on_cards {
        out.push(format!("tel:+1999555{i:04}")); // area code 999: on no card
    }
    Generated { vcf, handles: out, on_cards }
}

fn base64_photo() -> String {
    use base64::Engine;
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(6_000, 0x55);
    base64::engine::general_purpose::STANDARD.encode(jpeg)
}

#[derive(Default)]
struct Times {
    parse: Vec<Duration>,
    build: Vec<Duration>,
    lookup: Vec<Duration>,
    /// CPU time of the benchmark's thread in each phase: on a machine shared with other builds
    /// the wall time says more about the load than about the code.
    parse_cpu: Vec<Duration>,
    build_cpu: Vec<Duration>,
    lookup_cpu: Vec<Duration>,
}

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given, which lives on this stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Runs `f`, pushing its wall and CPU time.
fn timed<T>(wall: &mut Vec<Duration>, cpu: &mut Vec<Duration>, f: impl FnOnce() -> T) -> T {
    let (t, c) = (Instant::now(), thread_cpu());
    let out = f();
    wall.push(t.elapsed());
    cpu.push(thread_cpu().saturating_sub(c));
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(cli.repeat > 0 && cli.cards > 1 && cli.handles > 1, "need at least one run, two cards and two handles");
    let g = generate(cli.cards, cli.handles, cli.seed);
    let mut times = Times::default();
    let mut last = None;
    for _ in 0..cli.repeat {
        let parsed = timed(&mut times.parse, &mut times.parse_cpu, || contacts::vcard::parse(&g.vcf, "bench"));
        ensure!(parsed.problems.is_empty(), "the generated vCard text had problems: {:?}", parsed.problems.first());
        ensure!(parsed.cards.len() == cli.cards, "parsed {} cards of {}", parsed.cards.len(), cli.cards);

        let opts = MatchOptions { default_region: Some("US".into()), own_handles: Vec::new() };
        let book = timed(&mut times.build, &mut times.build_cpu, || ContactBook::build_from(vec![parsed], opts));
        let stats = timed(&mut times.lookup, &mut times.lookup_cpu, || book.match_handles(g.handles.iter().map(String::as_str)));
        ensure!(stats.matched == g.on_cards, "matched {} handles, {} are on cards", stats.matched, g.on_cards);
        last = Some(book.stats());
    }
    let stats = last.unwrap_or_default();
    let (parse, build, lookup) = (median(&times.parse), median(&times.build), median(&times.lookup));
    let (parse_cpu, build_cpu, lookup_cpu) = (median(&times.parse_cpu), median(&times.build_cpu), median(&times.lookup_cpu));
    let fastest = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    if cli.json {
        let figures = json!({
            "cards": cli.cards, "handles": cli.handles, "vcf_bytes": g.vcf.len(), "repeat": cli.repeat,
            "book_handles": stats.handles, "conflicts": stats.conflicts,
            "parse_ms": ms(parse), "build_ms": ms(build), "lookup_ms": ms(lookup),
            "fastest_parse_ms": ms(fastest(&times.parse)), "fastest_build_ms": ms(fastest(&times.build)), "fastest_lookup_ms": ms(fastest(&times.lookup)),
            "parse_cpu_ms": ms(parse_cpu), "build_cpu_ms": ms(build_cpu), "lookup_cpu_ms": ms(lookup_cpu),
        });
        println!("{figures}");
    } else {
        println!(
            "{} cards ({:.1} MB of vCard, {} handles, {} conflicts) against {} handles, median of {} runs:",
            cli.cards,
            g.vcf.len() as f64 / 1e6,
            stats.handles,
            stats.conflicts,
            cli.handles,
            cli.repeat
        );
        println!("  {:<22} {:>10} {:>12} {:>10}", "phase", "wall ms", "fastest ms", "CPU ms");
        for (name, wall, all, cpu) in [
            ("vCard parse", parse, &times.parse, parse_cpu),
            ("ContactBook::build", build, &times.build, build_cpu),
            ("match_handles", lookup, &times.lookup, lookup_cpu),
        ] {
            println!("  {name:<22} {:>10.1} {:>12.1} {:>10.1}", ms(wall), ms(fastest(all)), ms(cpu));
        }
        println!("  {:<22} {:>10.1} {:>12} {:>10.1}", "build + match", ms(build + lookup), "", ms(build_cpu + lookup_cpu));
    }
    Ok(())
}
