//! `backup-bench`: how fast does the iPhone backup reader decrypt, next to `openssl enc -d`, and
//! how long does an encrypted backup's password key take to derive?
//!
//! Why this shape: decrypting attachments is the bulk of importing a backup, and OpenSSL's
//! AES-NI CBC decryption is the ceiling for the same work on the same machine. So one
//! encrypted file (random bytes, default 200 MB) is packed by `cloudkit-sim`'s packer, whose
//! truth gives the file's key; then, alternately in each round, `openssl enc -d -aes-256-cbc -K
//! KEY -iv 0…` and the reader's `Backup::extract` decrypt the same blob into a file on the same
//! disk, timed from start to a complete output. The outputs must be identical. Rates are the
//! median of the rounds.
//!
//! The key derivation is timed on a backup packed with iOS's real counts (10,000,000
//! PBKDF2-SHA256 + 10,000 PBKDF2-SHA1 rounds), as `Backup::open` reports it, and then the open
//! that reads the key cache instead.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use cloudkit_sim::backup::{self, BackupEntry, Content, Encryption, Iterations, PackOptions};
use ios_backup::{Backup, KeySource, Password};
use rand::{RngCore, SeedableRng};

#[derive(Parser)]
#[command(name = "backup-bench", about = "iPhone backup decryption throughput vs openssl, and the password key derivation time")]
struct Args {
    /// Size of the encrypted file, in MB (10^6 bytes).
    #[arg(long, default_value_t = 200)]
    size_mb: u64,
    /// Rounds (each: openssl, then the reader); rates are the median.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Where the backup and the outputs go (default: the system temp dir). Use a real disk.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Skip the (slow) key derivation with real iteration counts.
    #[arg(long)]
    no_kdf: bool,
}

const PASSWORD: &[u8] = b"benchmark password";
const TARGET_RATIO: f64 = 0.8;

/// User + system CPU seconds of this process (`RUSAGE_SELF`) or of its waited-for children.
fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Whether two files have the same bytes.
fn same_file(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

async fn throughput(args: &Args, work: &Path) -> Result<()> {
    let plain = work.join("plain.bin");
    let size = args.size_mb * 1_000_000;
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&plain)?);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n])?;
            left -= n as u64;
        }
    }
    let dir = work.join("backup");
    let rel = "Library/SMS/Attachments/00/00/BENCH/video.mov";
    let entries = [BackupEntry { domain: "MediaDomain".into(), relative_path: rel.into(), content: Content::File(plain.clone()) }];
    let options = PackOptions { encryption: Some(Encryption { password: PASSWORD.to_vec(), iterations: Iterations::TEST }), ..PackOptions::default() };
    let packed = backup::pack(&dir, &entries, &options).await?;
    std::fs::remove_file(&plain)?;
    let id = backup::file_id("MediaDomain", rel);
    let key = packed.file_keys.get(&id).context("the packer's truth has no key for the file")?;
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let blob = dir.join(&id[..2]).join(&id);

    let reader = Backup::open(&dir, Some(&Password::new(PASSWORD)), None).await?;
    let file = reader.find("MediaDomain", rel).await?.context("the file is not in Manifest.db")?;
    let (out_ssl, out_mine) = (work.join("openssl.out"), work.join("reader.out"));
    let (mut ssl, mut mine) = (Vec::new(), Vec::new());
    // MB per CPU second: the machine is shared, so wall-clock rates swing with other work.
    let (mut ssl_cpu, mut mine_cpu) = (Vec::new(), Vec::new());
    for round in 0..args.repeat {
        let (started, cpu) = (Instant::now(), cpu_secs(libc::RUSAGE_CHILDREN));
        let status = Command::new("openssl")
            .args(["enc", "-d", "-aes-256-cbc", "-K", &key_hex, "-iv", &"0".repeat(32), "-in"])
            .arg(&blob)
            .arg("-out")
            .arg(&out_ssl)
            .status()
            .context("running openssl")?;
        ensure!(status.success(), "openssl failed: {status}");
        ssl.push(size as f64 / 1e6 / started.elapsed().as_secs_f64());
        ssl_cpu.push(size as f64 / 1e6 / (cpu_secs(libc::RUSAGE_CHILDREN) - cpu));

        let (started, cpu) = (Instant::now(), cpu_secs(libc::RUSAGE_SELF));
        let written = reader.extract(&file, &out_mine).await?;
        mine.push(size as f64 / 1e6 / started.elapsed().as_secs_f64());
        mine_cpu.push(size as f64 / 1e6 / (cpu_secs(libc::RUSAGE_SELF) - cpu));
        ensure!(written == size, "the reader wrote {written} bytes, expected {size}");
        if round == 0 {
            ensure!(same_file(&out_ssl, &out_mine)?, "openssl and the reader disagree on the bytes");
        }
        eprintln!(
            "round {}: openssl {:.0} MB/s ({:.0} per CPU s), reader {:.0} MB/s ({:.0} per CPU s)",
            round + 1,
            ssl[round],
            ssl_cpu[round],
            mine[round],
            mine_cpu[round]
        );
    }
    let (ssl, mine, ssl_cpu, mine_cpu) = (median(ssl), median(mine), median(ssl_cpu), median(mine_cpu));
    let ratio = mine / ssl;
    println!("| file | openssl enc -d MB/s | reader MB/s | reader/openssl | openssl MB per CPU s | reader MB per CPU s | ratio per CPU s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!("| {} MB | {ssl:.0} | {mine:.0} | {ratio:.2} | {ssl_cpu:.0} | {mine_cpu:.0} | {:.2} |", args.size_mb, mine_cpu / ssl_cpu);
    if ratio < TARGET_RATIO {
        eprintln!("below the target of {TARGET_RATIO} of openssl");
    }
    Ok(())
}

async fn key_derivation(work: &Path) -> Result<()> {
    let dir = work.join("real-iterations");
    let entries = [BackupEntry { domain: "HomeDomain".into(), relative_path: "Library/SMS/sms.db".into(), content: Content::Bytes(vec![0; 4096]) }];
    let options = PackOptions { encryption: Some(Encryption { password: PASSWORD.to_vec(), iterations: Iterations::REAL }), ..PackOptions::default() };
    let started = Instant::now();
    backup::pack(&dir, &entries, &options).await?;
    let pack_secs = started.elapsed().as_secs_f64();
    let cache = work.join("key-cache");
    let started = Instant::now();
    let opened = Backup::open(&dir, Some(&Password::new(PASSWORD)), Some(&cache)).await?;
    let open_secs = started.elapsed().as_secs_f64();
    let KeySource::Derived { seconds } = opened.key_source() else { anyhow::bail!("the first open did not derive the key") };
    opened.close().await;
    let started = Instant::now();
    let cached = Backup::open(&dir, None, Some(&cache)).await?;
    let cached_secs = started.elapsed().as_secs_f64();
    ensure!(cached.key_source() == KeySource::Cache, "the second open did not use the key cache");
    println!();
    println!("| 10,000,000 + 10,000 rounds | seconds |");
    println!("|---|---:|");
    println!("| reader: key derivation | {seconds:.2} |");
    println!("| reader: whole open (derivation, Manifest.db) | {open_secs:.2} |");
    println!("| reader: open with the key cache | {cached_secs:.3} |");
    println!("| simulator: packing (one derivation) | {pack_secs:.2} |");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let work = match &args.work_dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    throughput(&args, work.path()).await?;
    if !args.no_kdf {
        key_derivation(work.path()).await?;
    }
    Ok(())
}
