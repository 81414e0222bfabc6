//! `stedi generate`: a deterministic synthetic landing set shaped like the STEDI sample.
//!
//! A newcomer can try the pipeline without any data of their own, and benchmarks can run
//! at millions of customers without copying the public sample around. The files use the
//! sample's field names, key order and value shapes, and they carry, on purpose, every
//! defect the pipeline has to handle:
//!
//! - About half of the customers consent to research, and some of them consent only after
//!   a first exercise session, so about a fifth of their phone readings predate consent:
//!   the `since-consent` policy visibly differs from `any-time`.
//! - Every customer's phone records, consenting or not: the pipeline has to filter.
//! - 30 reused serial numbers: about 20% of the customers have no device yet and carry one
//!   of these 30 serials, and 1 device owner in 20 owns a device whose serial is one of them.
//!   Attributing step-trainer readings by serial alone gives an owner's readings to others
//!   (and, at scale, multiplies rows the way the reference system's joins did).
//! - Different customers' phones record at the same millisecond now and then (about 5% of
//!   a device owner's instants), so joining on the timestamp alone pairs readings with the
//!   wrong customer.
//! - About 3% of the customers get a second record with a later `lastUpdateDate`, in the
//!   next customer file, that grants or revokes research consent (customers of the last
//!   file excepted: no file comes after it).
//! - About 2% of the phone readings name the customer's email in upper case or with
//!   surrounding spaces, and some second customer records change the email's case.
//!
//! # Determinism and scale
//!
//! Customers come in cohorts of 100 consecutive indices that register and exercise within
//! their own ten-minute window; windows of different cohorts never overlap. Within a cohort
//! every serial number is carried by one customer only, so two customers who share a serial
//! never record at the same millisecond and attribution stays unambiguous.
//!
//! Everything is derived from `(seed, customer index)`, and what customers of a cohort share
//! from `(seed, cohort index)`, with a counter-based generator (SplitMix64). Each output file
//! is therefore a pure function of `(customers, seed, file index)`: files are written in
//! parallel, memory stays flat in the number of customers, and the bytes do not depend on
//! the number of threads.

use std::fs::{self, File};
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The three landing feeds, in the order their folders and files are listed.
///
/// Each is a folder of the output holding `<source>-NNNNN.json` files, the shape of a
/// landing zone, so the set can be landed or read as it is.
pub const SOURCES: [&str; 3] = ["customer", "accelerometer", "step_trainer"];

/// What to generate: how many customers, and from which seed.
///
/// The same options always give the same bytes, so a benchmark or a bug report can name
/// its data set by these two numbers instead of shipping files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Number of distinct customers. Phone and step-trainer readings grow with it
    /// (about 90 and 25 per customer).
    pub customers: u64,
    /// Seed of every random choice; another seed gives another, equally shaped, set.
    pub seed: u64,
}

impl Default for GenerateOptions {
    /// 1,000 customers, about the size of the public sample, so a first try is quick.
    fn default() -> Self {
        GenerateOptions {
            customers: 1_000,
            seed: 42,
        }
    }
}

/// What was written, so the command can report it and tests can check it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Lines in the customer files: one per customer plus the consent-change records.
    pub customer_records: u64,
    /// Lines in the accelerometer files.
    pub accelerometer_readings: u64,
    /// Lines in the step-trainer files.
    pub step_trainer_readings: u64,
    /// Every file written, source by source (in [`SOURCES`] order), then by file number.
    pub files: Vec<PathBuf>,
    /// Total size of the files written.
    pub bytes: u64,
}

/// Why a landing set could not be generated.
///
/// Each variant names the path involved so the user knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A landing set needs at least one customer.
    #[error("cannot generate a landing set of 0 customers; pass `--customers` 1 or more")]
    NoCustomers,
    /// The output folder already holds landing files: adding a second generated set to
    /// them would mix two sets whose customers, serials and timestamps clash.
    #[error(
        "`{}` already holds files; generate into an empty or new folder so two generated sets never mix",
        path.display()
    )]
    OutputNotEmpty {
        /// The source folder that is not empty.
        path: PathBuf,
    },
    /// The output folder could not be inspected.
    #[error("cannot inspect `{}`: {source}", path.display())]
    Inspect {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A folder or file could not be created or written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// The folder or file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

impl From<GenerateError> for crate::error::StediError {
    fn from(e: GenerateError) -> Self {
        crate::error::StediError::Generate(Box::new(e))
    }
}

/// Writes a synthetic landing set into `out` and returns what it wrote.
///
/// The files are `out/<source>/<source>-NNNNN.json` (newline-delimited JSON), cut every
/// 5,000 customers (or in two halves below 10,000 customers) so that even a small set has
/// several files per feed, like a real feed. Files are generated in parallel, one worker
/// per available core. `progress` is called from any thread with the number of bytes just
/// written, so a caller can drive a progress bar.
///
/// Refuses to write when a source folder of `out` already holds files, so a user never
/// mixes two generated sets.
///
/// ```no_run
/// use stedi::generate::{generate, GenerateOptions};
///
/// let opts = GenerateOptions { customers: 10_000, seed: 7 };
/// let summary = generate("landing-demo".as_ref(), &opts, &|_bytes| {})?;
/// assert_eq!(summary.files.len(), 6);
/// # Ok::<(), stedi::generate::GenerateError>(())
/// ```
pub fn generate(
    out: &Path,
    opts: &GenerateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<GenerateSummary, GenerateError> {
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    generate_with_threads(out, opts, threads, progress)
}

/// [`generate`] with a given number of worker threads (tests check the bytes do not
/// depend on it).
fn generate_with_threads(
    out: &Path,
    opts: &GenerateOptions,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<GenerateSummary, GenerateError> {
    if opts.customers == 0 {
        return Err(GenerateError::NoCustomers);
    }
    refuse_mixing(out)?;
    for source in SOURCES {
        let dir = out.join(source);
        fs::create_dir_all(&dir).map_err(|source| GenerateError::Write { path: dir, source })?;
    }

    let job = Job {
        out,
        seed: opts.seed,
        layout: Layout::new(opts.customers),
        pool: pool_serials(opts.seed),
        progress,
    };
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let workers = (threads.max(1) as u64).min(job.layout.files);
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| run_worker(&job, &next, &stop)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<_>>()
    });

    let mut summary = GenerateSummary::default();
    for outcome in outcomes {
        for report in outcome? {
            summary.customer_records += report.customer_records;
            summary.accelerometer_readings += report.accelerometer_readings;
            summary.step_trainer_readings += report.step_trainer_readings;
            summary.bytes += report.bytes;
        }
    }
    summary.files = SOURCES
        .iter()
        .flat_map(|source| (0..job.layout.files).map(move |file| file_path(out, source, file)))
        .collect();
    Ok(summary)
}

/// Fails if any source folder of `out` already holds an entry.
fn refuse_mixing(out: &Path) -> Result<(), GenerateError> {
    for source in SOURCES {
        let dir = out.join(source);
        match fs::read_dir(&dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(GenerateError::OutputNotEmpty { path: dir });
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(GenerateError::Inspect { path: dir, source }),
        }
    }
    Ok(())
}

fn file_path(out: &Path, source: &str, file: u64) -> PathBuf {
    out.join(source).join(format!("{source}-{file:05}.json"))
}

// ---------------------------------------------------------------------------------------
// Shape parameters
// ---------------------------------------------------------------------------------------

/// Customers per file once the set is large enough for two full files.
const CUSTOMERS_PER_FILE: u64 = 5_000;
/// Consecutive customers that register and exercise in the same time window.
const COHORT_SIZE: usize = 100;
/// Serial numbers the fulfillment site reused.
const POOL_SIZE: usize = 30;
/// Customers per cohort without a device, carrying a reused serial (20%).
const POOL_CUSTOMERS_PER_COHORT: usize = 20;
/// Device owners per cohort whose device has a reused serial (1 owner in 20).
const POOL_OWNERS_PER_COHORT: usize = 4;
/// Start of the first cohort's window: 2022-01-01T00:00:00Z in epoch milliseconds.
const FIRST_WINDOW_START: i64 = 1_640_995_200_000;
/// Length of a cohort's window; every phone reading of the cohort falls inside it.
const WINDOW_MS: i64 = 600_000;
/// Buffered bytes per file before they are written out.
const FLUSH_AT: usize = 1 << 20;

// Probabilities, in thousandths.
/// Customers whose first record consents to research.
const RESEARCH: u64 = 500;
/// Consenting customers who consent only after their first exercise session.
const CONSENT_AFTER_FIRST_SESSION: u64 = 600;
/// Customers sharing with the public.
const SHARE_PUBLIC: u64 = 500;
/// Customers sharing with friends.
const SHARE_FRIENDS: u64 = 500;
/// Share dates given some minutes after registration instead of at registration.
const SHARE_LATER: u64 = 200;
/// Customers whose consent changes in a second record.
const CONSENT_CHANGE: u64 = 30;
/// A device owner's instants that another customer's phone also records.
const SHARED_INSTANT: u64 = 50;
/// Instants with three phone readings (the others have two).
const THREE_READINGS: u64 = 840;
/// Phone readings whose `user` is written in upper case or with spaces around it.
const MESSY_USER: u64 = 20;
/// Axis values other than -1.0, 0.0 and 1.0.
const ODD_AXIS_VALUE: u64 = 40;

const FIRST_NAMES: &[(&str, &str)] = &[
    ("Santosh", "Santosh"),
    ("Ben", "Ben"),
    ("Frank", "Frank"),
    ("David", "David"),
    ("Edward", "Edward"),
    ("Jane", "Jane"),
    ("Jaya", "Jaya"),
    ("Jerry", "Jerry"),
    ("Jacob", "Jacob"),
    ("Sarah", "Sarah"),
    ("Chris", "Chris"),
    ("Danny", "Danny"),
    ("Craig", "Craig"),
    ("Ashley", "Ashley"),
    ("Gail", "Gail"),
    ("Manoj", "Manoj"),
    ("Neeraj", "Neeraj"),
    ("Senthil", "Senthil"),
    ("Spencer", "Spencer"),
    ("Liz", "Liz"),
    ("Anna", "Anna"),
    ("Aisha", "Aisha"),
    ("Mei", "Mei"),
    ("Hiroshi", "Hiroshi"),
    ("Olga", "Olga"),
    ("Kwame", "Kwame"),
    ("Priya", "Priya"),
    ("Lucía", "Lucia"),
    ("José", "Jose"),
    ("Zoë", "Zoe"),
    ("Renée", "Renee"),
    ("Mateo", "Mateo"),
    ("Ingrid", "Ingrid"),
    ("Tariq", "Tariq"),
    ("Fatima", "Fatima"),
    ("Noah", "Noah"),
    ("Emma", "Emma"),
    ("Liam", "Liam"),
    ("Chloé", "Chloe"),
    ("Björn", "Bjorn"),
    ("Siobhán", "Siobhan"),
    ("Dmitri", "Dmitri"),
    ("Amara", "Amara"),
    ("Kenji", "Kenji"),
    ("Nadia", "Nadia"),
    ("Omar", "Omar"),
];

const LAST_NAMES: &[(&str, &str)] = &[
    ("Clayton", "Clayton"),
    ("Khatib", "Khatib"),
    ("Hansen", "Hansen"),
    ("Jones", "Jones"),
    ("Staples", "Staples"),
    ("Gonzalez", "Gonzalez"),
    ("Jackson", "Jackson"),
    ("Jefferson", "Jefferson"),
    ("Habschied", "Habschied"),
    ("Olson", "Olson"),
    ("Smith", "Smith"),
    ("Anandh", "Anandh"),
    ("Davis", "Davis"),
    ("Doshi", "Doshi"),
    ("Howard", "Howard"),
    ("Phillips", "Phillips"),
    ("Wu", "Wu"),
    ("Mitra", "Mitra"),
    ("Ahmed", "Ahmed"),
    ("Abram", "Abram"),
    ("Müller", "Muller"),
    ("O'Brien", "OBrien"),
    ("Nguyen", "Nguyen"),
    ("García", "Garcia"),
    ("Kowalski", "Kowalski"),
    ("Okafor", "Okafor"),
    ("Tanaka", "Tanaka"),
    ("Petrov", "Petrov"),
    ("Haddad", "Haddad"),
    ("Silva", "Silva"),
    ("Rossi", "Rossi"),
    ("Schmidt", "Schmidt"),
    ("Dubois", "Dubois"),
    ("Fernández", "Fernandez"),
    ("Novak", "Novak"),
    ("Eriksson", "Eriksson"),
    ("Kim", "Kim"),
    ("Patel", "Patel"),
    ("Cohen", "Cohen"),
    ("Mensah", "Mensah"),
    ("Walsh", "Walsh"),
    ("Santos", "Santos"),
    ("Becker", "Becker"),
    ("Yamamoto", "Yamamoto"),
    ("Larsen", "Larsen"),
];

/// Area codes of the (fictional, 555) phone numbers.
const AREA_CODES: &[u64] = &[801, 385, 435, 208, 702, 303, 415, 212, 617, 206];

// ---------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finalizer: a bijection on `u64` that scrambles every bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a random stream is used for; each (seed, entity, purpose) has its own stream, so
/// adding a draw to one purpose never shifts another.
#[derive(Clone, Copy)]
enum Purpose {
    Profile = 1,
    Schedule,
    Readings,
    Distances,
    Serial,
    PoolSerial,
    Roles,
    SharedInstants,
}

/// SplitMix64 keyed by (seed, entity, purpose).
struct Rng {
    state: u64,
}

impl Rng {
    fn new(seed: u64, entity: u64, purpose: Purpose) -> Self {
        let key = mix(mix(seed) ^ entity) ^ (purpose as u64).wrapping_mul(GOLDEN_GAMMA);
        Rng { state: mix(key) }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A number in `0..n` (`n` > 0); the bias is below 2^-40 for the small `n` used here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of length `len` (> 0).
    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below(high.abs_diff(low) + 1) as i64
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.index(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The customers
// ---------------------------------------------------------------------------------------

/// How files are cut.
#[derive(Debug, Clone, Copy)]
struct Layout {
    customers: u64,
    per_file: u64,
    files: u64,
}

impl Layout {
    fn new(customers: u64) -> Self {
        let per_file = if customers >= 2 * CUSTOMERS_PER_FILE {
            CUSTOMERS_PER_FILE
        } else {
            customers.div_ceil(2).max(1)
        };
        Layout {
            customers,
            per_file,
            files: customers.div_ceil(per_file),
        }
    }

    /// Indices of the customers whose records and readings are in file `file`.
    fn customers_of(&self, file: u64) -> Range<u64> {
        let start = file * self.per_file;
        start..(start + self.per_file).min(self.customers)
    }

    /// Cohorts with at least one customer in `customers` (not empty).
    fn cohorts_of(customers: &Range<u64>) -> Range<u64> {
        let size = COHORT_SIZE as u64;
        customers.start / size..(customers.end - 1) / size + 1
    }
}

/// A serial number, formatted as a version-4 UUID like the sample's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Serial([u8; 36]);

impl Serial {
    fn random(rng: &mut Rng) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut text = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            text[at] = HEX[usize::from(byte >> 4)];
            text[at + 1] = HEX[usize::from(byte & 0x0f)];
            at += 2;
        }
        Serial(text)
    }
}

/// The 30 serial numbers the fulfillment site reused, for this seed.
fn pool_serials(seed: u64) -> [Serial; POOL_SIZE] {
    std::array::from_fn(|slot| {
        Serial::random(&mut Rng::new(seed, slot as u64, Purpose::PoolSerial))
    })
}

/// What a customer's serial number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Owns a device with its own serial.
    Owner,
    /// Owns a device whose serial is one of the reused ones.
    PoolOwner(usize),
    /// Has no device yet; the record carries a reused serial.
    PoolCustomer(usize),
}

/// How an email is spelled in a record or reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    AsIs,
    Lower,
    Upper,
    LeadingSpace,
    TrailingSpace,
}

/// A second customer record that grants research consent (if the first had none) or
/// revokes it.
#[derive(Debug, Clone, Copy)]
struct ConsentChange {
    at: i64,
    email: Spelling,
}

/// Everything about one customer; derived from (seed, index) and the cohort's roles.
#[derive(Debug, Clone)]
struct Customer {
    index: u64,
    first_name: usize,
    last_name: usize,
    phone: u64,
    birth_day: (i64, i64, i64),
    serial: Serial,
    owns_device: bool,
    registration: i64,
    last_update: i64,
    research: Option<i64>,
    public: Option<i64>,
    friends: Option<i64>,
    change: Option<ConsentChange>,
    /// Sorted, distinct instants at which the phone recorded.
    instants: Vec<i64>,
}

impl Customer {
    fn new(seed: u64, index: u64, role: Role, window: i64, pool: &[Serial; POOL_SIZE]) -> Self {
        let mut rng = Rng::new(seed, index, Purpose::Profile);
        let registration = window + rng.between(0, 120_000);
        let (instants, first_session_end) = schedule(seed, index, registration);
        let first_name = rng.index(FIRST_NAMES.len());
        let last_name = rng.index(LAST_NAMES.len());
        let phone =
            AREA_CODES[rng.index(AREA_CODES.len())] * 10_000_000 + 5_550_000 + rng.below(10_000);
        let birth_day = (
            rng.between(1940, 2006),
            rng.between(1, 12),
            rng.between(1, 28),
        );
        let research = rng.chance(RESEARCH).then(|| {
            if rng.chance(CONSENT_AFTER_FIRST_SESSION) {
                first_session_end + rng.between(2_000, 30_000)
            } else {
                registration
            }
        });
        let share_date = |rng: &mut Rng, per_mille| {
            rng.chance(per_mille).then(|| {
                if rng.chance(SHARE_LATER) {
                    registration + rng.between(60_000, 300_000)
                } else {
                    registration
                }
            })
        };
        let public = share_date(&mut rng, SHARE_PUBLIC);
        let friends = share_date(&mut rng, SHARE_FRIENDS);
        let last_update = [research, public, friends]
            .into_iter()
            .flatten()
            .fold(registration, i64::max);
        let change = rng.chance(CONSENT_CHANGE).then(|| ConsentChange {
            at: last_update + rng.between(30_000, 480_000),
            email: [Spelling::AsIs, Spelling::Lower, Spelling::Upper][rng.index(3)],
        });
        let (serial, owns_device) = match role {
            Role::Owner => (
                Serial::random(&mut Rng::new(seed, index, Purpose::Serial)),
                true,
            ),
            Role::PoolOwner(slot) => (pool[slot], true),
            Role::PoolCustomer(slot) => (pool[slot], false),
        };
        Customer {
            index,
            first_name,
            last_name,
            phone,
            birth_day,
            serial,
            owns_device,
            registration,
            last_update,
            research,
            public,
            friends,
            change,
            instants,
        }
    }

    /// Writes the email, spelled as asked. Email forms of names are ASCII letters only, so
    /// the email never needs JSON escaping (a test checks it).
    fn push_email(&self, buf: &mut Vec<u8>, spelling: Spelling) {
        if spelling == Spelling::LeadingSpace {
            buf.push(b' ');
        }
        let start = buf.len();
        buf.extend_from_slice(FIRST_NAMES[self.first_name].1.as_bytes());
        buf.push(b'.');
        buf.extend_from_slice(LAST_NAMES[self.last_name].1.as_bytes());
        buf.push(b'.');
        push_u64(buf, self.index);
        buf.extend_from_slice(b"@example.com");
        match spelling {
            Spelling::Lower => buf[start..].make_ascii_lowercase(),
            Spelling::Upper => buf[start..].make_ascii_uppercase(),
            Spelling::TrailingSpace => buf.push(b' '),
            Spelling::AsIs | Spelling::LeadingSpace => {}
        }
    }

    /// Writes the customer's first record.
    fn write_record(&self, buf: &mut Vec<u8>) {
        self.write_record_as(buf, Spelling::AsIs, self.last_update, self.research);
    }

    /// Writes the second record of a consent change, if the customer has one.
    fn write_change(&self, buf: &mut Vec<u8>) -> bool {
        let Some(change) = self.change else {
            return false;
        };
        let research = match self.research {
            Some(_) => None,
            None => Some(change.at),
        };
        self.write_record_as(buf, change.email, change.at, research);
        true
    }

    fn write_record_as(
        &self,
        buf: &mut Vec<u8>,
        email: Spelling,
        last_update: i64,
        research: Option<i64>,
    ) {
        buf.extend_from_slice(b"{\"customerName\": \"");
        push_json_text(buf, FIRST_NAMES[self.first_name].0);
        buf.push(b' ');
        push_json_text(buf, LAST_NAMES[self.last_name].0);
        buf.extend_from_slice(b"\", \"email\": \"");
        self.push_email(buf, email);
        buf.extend_from_slice(b"\", \"phone\": \"");
        push_u64(buf, self.phone);
        buf.extend_from_slice(b"\", \"birthDay\": \"");
        let (year, month, day) = self.birth_day;
        push_i64(buf, year);
        for part in [month, day] {
            buf.push(b'-');
            if part < 10 {
                buf.push(b'0');
            }
            push_i64(buf, part);
        }
        buf.extend_from_slice(b"\", \"serialNumber\": \"");
        buf.extend_from_slice(&self.serial.0);
        buf.extend_from_slice(b"\", \"registrationDate\": ");
        push_i64(buf, self.registration);
        buf.extend_from_slice(b", \"lastUpdateDate\": ");
        push_i64(buf, last_update);
        for (key, date) in [
            (&b", \"shareWithResearchAsOfDate\": "[..], research),
            (b", \"shareWithPublicAsOfDate\": ", self.public),
            (b", \"shareWithFriendsAsOfDate\": ", self.friends),
        ] {
            if let Some(date) = date {
                buf.extend_from_slice(key);
                push_i64(buf, date);
            }
        }
        buf.extend_from_slice(b"}\n");
    }

    /// Writes the phone readings and, for a device owner, one step-trainer reading per
    /// instant. Returns how many lines of each were written.
    fn write_readings(
        &self,
        seed: u64,
        accelerometer: &mut Vec<u8>,
        step_trainer: &mut Vec<u8>,
    ) -> (u64, u64) {
        let mut rng = Rng::new(seed, self.index, Purpose::Readings);
        let mut distances = Rng::new(seed, self.index, Purpose::Distances);
        let mut email = Vec::with_capacity(64);
        self.push_email(&mut email, Spelling::AsIs);
        let (mut phone_lines, mut step_lines) = (0, 0);
        for &instant in &self.instants {
            let readings = if rng.chance(THREE_READINGS) { 3 } else { 2 };
            for _ in 0..readings {
                accelerometer.extend_from_slice(b"{\"user\":\"");
                if rng.chance(MESSY_USER) {
                    let spelling = [
                        Spelling::Upper,
                        Spelling::LeadingSpace,
                        Spelling::TrailingSpace,
                    ][rng.index(3)];
                    self.push_email(accelerometer, spelling);
                } else {
                    accelerometer.extend_from_slice(&email);
                }
                accelerometer.extend_from_slice(b"\",\"timestamp\":");
                push_i64(accelerometer, instant);
                for key in [&b",\"x\":"[..], b",\"y\":", b",\"z\":"] {
                    accelerometer.extend_from_slice(key);
                    push_tenths(accelerometer, axis_value(&mut rng));
                }
                accelerometer.extend_from_slice(b"}\n");
            }
            phone_lines += readings;
            if self.owns_device {
                step_trainer.extend_from_slice(b"{\"sensorReadingTime\":");
                push_i64(step_trainer, instant);
                step_trainer.extend_from_slice(b",\"serialNumber\":\"");
                step_trainer.extend_from_slice(&self.serial.0);
                step_trainer.extend_from_slice(b"\",\"distanceFromObject\":");
                push_i64(step_trainer, distances.between(200, 300));
                step_trainer.extend_from_slice(b"}\n");
                step_lines += 1;
            }
        }
        (phone_lines, step_lines)
    }
}

/// The instants at which a customer's phone records: 2 to 4 exercise sessions of 28 to 34
/// instants in all, at a fixed interval of 2 to 4 seconds, separated by pauses of 20 to 90
/// seconds. Returns them (sorted) with the last instant of the first session.
///
/// Starting at most 3 minutes into the window, the last instant is at most
/// 3 min + 33 × 4 s + 3 × 90 s = 582 s into it, inside the 600 s window.
fn schedule(seed: u64, index: u64, registration: i64) -> (Vec<i64>, i64) {
    let mut rng = Rng::new(seed, index, Purpose::Schedule);
    let interval = rng.between(2_000, 4_000);
    let total = rng.between(28, 34) as usize;
    let sessions = [2, 3, 3, 3, 4][rng.index(5)];
    let mut instants = Vec::with_capacity(total + 4);
    let mut at = registration + rng.between(5_000, 60_000);
    let mut first_session_end = at;
    for session in 0..sessions {
        let count = total / sessions + usize::from(session < total % sessions);
        for _ in 0..count {
            instants.push(at);
            at += interval;
        }
        let last = at - interval;
        if session == 0 {
            first_session_end = last;
        }
        at = last + rng.between(20_000, 90_000);
    }
    (instants, first_session_end)
}

/// An accelerometer axis value in tenths: mostly -1.0, 0.0 or 1.0, sometimes another
/// one-decimal value between -2.0 and 2.0.
fn axis_value(rng: &mut Rng) -> i64 {
    if rng.chance(ODD_AXIS_VALUE) {
        // One of the 36 values -1.9..=1.9 that are not whole: skip -1.0, 0.0 and 1.0.
        let k = rng.between(0, 35);
        -19 + k + k / 9
    } else {
        [-10, 0, 10][rng.index(3)]
    }
}

/// Up to 100 consecutive customers who share a time window.
struct Cohort {
    customers: Vec<Customer>,
}

impl Cohort {
    /// The customers of cohort `cohort`, without the instants they share with each other.
    fn plan(job: &Job<'_>, cohort: u64) -> Self {
        let first = cohort * COHORT_SIZE as u64;
        let count = (job.layout.customers - first).min(COHORT_SIZE as u64);
        let roles = cohort_roles(job.seed, cohort);
        let window = FIRST_WINDOW_START + cohort as i64 * WINDOW_MS;
        let customers = (0..count)
            .map(|offset| {
                Customer::new(
                    job.seed,
                    first + offset,
                    roles[offset as usize],
                    window,
                    &job.pool,
                )
            })
            .collect();
        Cohort { customers }
    }

    /// The cohort with every customer's full set of instants: some instants of device owners
    /// are also recorded by another customer's phone (whose serial always differs, since
    /// serials are distinct within a cohort).
    fn build(job: &Job<'_>, cohort: u64) -> Self {
        let mut plan = Cohort::plan(job, cohort);
        let count = plan.customers.len();
        if count < 2 {
            return plan;
        }
        let mut rng = Rng::new(job.seed, cohort, Purpose::SharedInstants);
        let mut extra: Vec<Vec<i64>> = vec![Vec::new(); count];
        for (owner_at, owner) in plan.customers.iter().enumerate() {
            if !owner.owns_device {
                continue;
            }
            for &instant in &owner.instants {
                if rng.chance(SHARED_INSTANT) {
                    let mut other = rng.index(count - 1);
                    if other >= owner_at {
                        other += 1;
                    }
                    extra[other].push(instant);
                }
            }
        }
        for (customer, extra) in plan.customers.iter_mut().zip(extra) {
            if !extra.is_empty() {
                customer.instants.extend(extra);
                customer.instants.sort_unstable();
                customer.instants.dedup();
            }
        }
        plan
    }
}

/// Roles of the 100 positions of a cohort: 20 customers without a device and 4 device
/// owners carry reused serials, each of the 24 a different one.
fn cohort_roles(seed: u64, cohort: u64) -> [Role; COHORT_SIZE] {
    let mut rng = Rng::new(seed, cohort, Purpose::Roles);
    let mut positions: [usize; COHORT_SIZE] = std::array::from_fn(|i| i);
    let mut slots: [usize; POOL_SIZE] = std::array::from_fn(|i| i);
    rng.shuffle(&mut positions);
    rng.shuffle(&mut slots);
    let mut roles = [Role::Owner; COHORT_SIZE];
    for (rank, &position) in positions.iter().enumerate() {
        roles[position] = if rank < POOL_CUSTOMERS_PER_COHORT {
            Role::PoolCustomer(slots[rank])
        } else if rank < POOL_CUSTOMERS_PER_COHORT + POOL_OWNERS_PER_COHORT {
            Role::PoolOwner(slots[rank])
        } else {
            Role::Owner
        };
    }
    roles
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// What every worker needs.
struct Job<'a> {
    out: &'a Path,
    seed: u64,
    layout: Layout,
    pool: [Serial; POOL_SIZE],
    progress: &'a (dyn Fn(u64) + Sync),
}

/// Counts of one file of each source.
#[derive(Debug, Default)]
struct FileSetReport {
    customer_records: u64,
    accelerometer_readings: u64,
    step_trainer_readings: u64,
    bytes: u64,
}

/// Takes file numbers from `next` until none are left or another worker failed.
fn run_worker(
    job: &Job<'_>,
    next: &AtomicU64,
    stop: &AtomicBool,
) -> Result<Vec<FileSetReport>, GenerateError> {
    let mut reports = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let file = next.fetch_add(1, Ordering::Relaxed);
        if file >= job.layout.files {
            break;
        }
        match write_file_set(job, file) {
            Ok(report) => reports.push(report),
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                return Err(error);
            }
        }
    }
    Ok(reports)
}

/// A file being written, with its pending bytes.
struct Sink {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    written: u64,
}

impl Sink {
    fn create(path: PathBuf) -> Result<Self, GenerateError> {
        match File::create_new(&path) {
            Ok(file) => Ok(Sink {
                path,
                file,
                buf: Vec::with_capacity(FLUSH_AT + (FLUSH_AT >> 2)),
                written: 0,
            }),
            Err(source) => Err(GenerateError::Write { path, source }),
        }
    }

    fn flush_if_full(&mut self, progress: &(dyn Fn(u64) + Sync)) -> Result<(), GenerateError> {
        if self.buf.len() >= FLUSH_AT {
            self.flush(progress)?;
        }
        Ok(())
    }

    fn flush(&mut self, progress: &(dyn Fn(u64) + Sync)) -> Result<(), GenerateError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.file.write_all(&self.buf) {
            return Err(GenerateError::Write {
                path: self.path.clone(),
                source,
            });
        }
        let bytes = self.buf.len() as u64;
        self.written += bytes;
        self.buf.clear();
        progress(bytes);
        Ok(())
    }
}

/// Writes file `file` of each source: the records and readings of its customers, then the
/// consent-change records of the previous file's customers.
fn write_file_set(job: &Job<'_>, file: u64) -> Result<FileSetReport, GenerateError> {
    let [customers, accelerometer, step_trainer] =
        SOURCES.map(|source| Sink::create(file_path(job.out, source, file)));
    let (mut customers, mut accelerometer, mut step_trainer) =
        (customers?, accelerometer?, step_trainer?);
    let mut report = FileSetReport::default();

    let range = job.layout.customers_of(file);
    for cohort in Layout::cohorts_of(&range) {
        let cohort = Cohort::build(job, cohort);
        for customer in cohort
            .customers
            .iter()
            .filter(|customer| range.contains(&customer.index))
        {
            customer.write_record(&mut customers.buf);
            report.customer_records += 1;
            let (phone, step) =
                customer.write_readings(job.seed, &mut accelerometer.buf, &mut step_trainer.buf);
            report.accelerometer_readings += phone;
            report.step_trainer_readings += step;
            for sink in [&mut customers, &mut accelerometer, &mut step_trainer] {
                sink.flush_if_full(job.progress)?;
            }
        }
    }

    if let Some(previous) = file.checked_sub(1) {
        let range = job.layout.customers_of(previous);
        for cohort in Layout::cohorts_of(&range) {
            let cohort = Cohort::plan(job, cohort);
            for customer in cohort
                .customers
                .iter()
                .filter(|customer| range.contains(&customer.index))
            {
                if customer.write_change(&mut customers.buf) {
                    report.customer_records += 1;
                }
            }
            customers.flush_if_full(job.progress)?;
        }
    }

    for mut sink in [customers, accelerometer, step_trainer] {
        sink.flush(job.progress)?;
        report.bytes += sink.written;
    }
    Ok(report)
}

fn push_u64(buf: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn push_i64(buf: &mut Vec<u8>, value: i64) {
    if value < 0 {
        buf.push(b'-');
    }
    push_u64(buf, value.unsigned_abs());
}

/// Writes a number given in tenths with one decimal, as JSON floats like `-1.0` or `0.3`.
fn push_tenths(buf: &mut Vec<u8>, tenths: i64) {
    if tenths < 0 {
        buf.push(b'-');
    }
    let magnitude = tenths.unsigned_abs();
    push_u64(buf, magnitude / 10);
    buf.push(b'.');
    buf.push(b'0' + (magnitude % 10) as u8);
}

/// Writes `text` escaped for the inside of a JSON string.
fn push_json_text(buf: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in text.bytes() {
        match byte {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(byte >> 4)]);
                buf.push(HEX[usize::from(byte & 0x0f)]);
            }
            _ => buf.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
    use std::sync::atomic::AtomicUsize;

    /// A fresh folder under the system temp folder, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "stedi-generate-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn quiet(_: u64) {}

    fn generate_into(name: &str, customers: u64, seed: u64) -> (TempDir, GenerateSummary) {
        let dir = TempDir::new(name);
        let summary =
            generate(&dir.0, &GenerateOptions { customers, seed }, &quiet).expect("generate");
        (dir, summary)
    }

    /// Every file's name and bytes, in order.
    fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        for source in SOURCES {
            let mut names: Vec<_> = fs::read_dir(dir.join(source))
                .expect("read dir")
                .map(|entry| entry.expect("entry").path())
                .collect();
            names.sort();
            for path in names {
                let bytes = fs::read(&path).expect("read file");
                files.push((path.strip_prefix(dir).expect("prefix").to_path_buf(), bytes));
            }
        }
        files
    }

    struct Record {
        file: usize,
        email: String,
        serial: String,
        last_update: i64,
        research: Option<i64>,
    }

    struct Reading {
        user: String,
        timestamp: i64,
    }

    struct Step {
        time: i64,
        serial: String,
    }

    struct Landing {
        records: Vec<Record>,
        readings: Vec<Reading>,
        steps: Vec<Step>,
    }

    fn key(email: &str) -> String {
        email.trim().to_lowercase()
    }

    /// Parses every line, checking it is a JSON object with the sample's fields, key order
    /// and value types.
    fn load(dir: &Path) -> Landing {
        const CUSTOMER_KEYS: [&str; 10] = [
            "customerName",
            "email",
            "phone",
            "birthDay",
            "serialNumber",
            "registrationDate",
            "lastUpdateDate",
            "shareWithResearchAsOfDate",
            "shareWithPublicAsOfDate",
            "shareWithFriendsAsOfDate",
        ];
        let mut landing = Landing {
            records: Vec::new(),
            readings: Vec::new(),
            steps: Vec::new(),
        };
        for source in SOURCES {
            let mut files: Vec<_> = fs::read_dir(dir.join(source))
                .expect("read dir")
                .map(|entry| entry.expect("entry").path())
                .collect();
            files.sort();
            for (file, path) in files.iter().enumerate() {
                let name = path.file_name().and_then(|n| n.to_str()).expect("name");
                assert_eq!(name, format!("{source}-{file:05}.json"));
                let text = fs::read_to_string(path).expect("read");
                assert!(text.ends_with('\n'), "{name} ends with a newline");
                for line in text.lines() {
                    let value: Value = serde_json::from_str(line).expect("valid JSON");
                    let object = value.as_object().expect("a JSON object");
                    let keys: Vec<&str> = match source {
                        "customer" => CUSTOMER_KEYS
                            .into_iter()
                            .filter(|key| object.contains_key(*key))
                            .collect(),
                        "accelerometer" => vec!["user", "timestamp", "x", "y", "z"],
                        _ => vec!["sensorReadingTime", "serialNumber", "distanceFromObject"],
                    };
                    assert_eq!(object.len(), keys.len(), "unexpected fields in {line}");
                    let positions: Vec<usize> = keys
                        .iter()
                        .map(|key| line.find(&format!("\"{key}\":")).expect("key present"))
                        .collect();
                    assert!(positions.is_sorted(), "key order of {line}");
                    let text = |key: &str| object[key].as_str().expect(key).to_string();
                    let millis = |key: &str| {
                        let value = object[key].as_i64().expect(key);
                        assert!(value > 1_600_000_000_000 && value < 2_000_000_000_000);
                        value
                    };
                    match source {
                        "customer" => {
                            for key in ["customerName", "phone", "birthDay"] {
                                assert!(!text(key).is_empty());
                            }
                            assert_eq!(text("birthDay").len(), 10);
                            assert_eq!(text("serialNumber").len(), 36);
                            millis("registrationDate");
                            for key in &keys[7..] {
                                millis(key);
                            }
                            landing.records.push(Record {
                                file,
                                email: text("email"),
                                serial: text("serialNumber"),
                                last_update: millis("lastUpdateDate"),
                                research: object
                                    .contains_key("shareWithResearchAsOfDate")
                                    .then(|| millis("shareWithResearchAsOfDate")),
                            });
                        }
                        "accelerometer" => {
                            for axis in ["x", "y", "z"] {
                                assert!(object[axis].is_f64(), "{axis} is a float in {line}");
                                let value = object[axis].as_f64().expect("float");
                                assert!((-2.0..=2.0).contains(&value));
                            }
                            landing.readings.push(Reading {
                                user: text("user"),
                                timestamp: millis("timestamp"),
                            });
                        }
                        _ => {
                            let distance = object["distanceFromObject"].as_u64().expect("int");
                            assert!((200..=300).contains(&distance));
                            landing.steps.push(Step {
                                time: millis("sensorReadingTime"),
                                serial: text("serialNumber"),
                            });
                        }
                    }
                }
            }
        }
        landing
    }

    /// The latest record of each customer (emails compared trimmed and case-insensitively).
    fn latest(records: &[Record]) -> HashMap<String, &Record> {
        let mut latest: HashMap<String, &Record> = HashMap::new();
        for record in records {
            let entry = latest.entry(key(&record.email)).or_insert(record);
            if record.last_update > entry.last_update {
                *entry = record;
            }
        }
        latest
    }

    #[test]
    fn same_seed_gives_same_bytes_whatever_the_threads() {
        let opts = GenerateOptions {
            customers: 1_250,
            seed: 7,
        };
        let one = TempDir::new("threads-1");
        let many = TempDir::new("threads-5");
        let a = generate_with_threads(&one.0, &opts, 1, &quiet).expect("generate");
        let b = generate_with_threads(&many.0, &opts, 5, &quiet).expect("generate");
        assert_eq!(
            (a.customer_records, a.accelerometer_readings, a.bytes),
            (b.customer_records, b.accelerometer_readings, b.bytes)
        );
        assert!(contents(&one.0) == contents(&many.0), "bytes differ");

        let (other, _) = generate_into("seed-8", 1_250, 8);
        let (first, second) = (contents(&one.0), contents(&other.0));
        assert_eq!(first.len(), second.len());
        for ((_, a), (_, b)) in first.iter().zip(&second) {
            assert_ne!(a, b, "another seed gives other data");
        }
    }

    #[test]
    fn files_are_cut_by_customers() {
        for (customers, files) in [
            (1, 1),
            (2, 2),
            (10, 2),
            (9_999, 2),
            (10_000, 2),
            (10_001, 3),
        ] {
            assert_eq!(Layout::new(customers).files, files, "{customers} customers");
        }
        let layout = Layout::new(12_345);
        let covered: u64 = (0..layout.files)
            .map(|file| layout.customers_of(file).count() as u64)
            .sum();
        assert_eq!(covered, 12_345);

        let (dir, summary) = generate_into("small", 10, 1);
        assert_eq!(summary.files.len(), 6);
        for source in SOURCES {
            let count = fs::read_dir(dir.0.join(source)).expect("dir").count();
            assert_eq!(count, 2, "{source} files");
        }
        let total: u64 = summary
            .files
            .iter()
            .map(|path| fs::metadata(path).expect("metadata").len())
            .sum();
        assert_eq!(total, summary.bytes);
    }

    #[test]
    fn every_line_is_a_record_of_the_sample_shape() {
        let (dir, summary) = generate_into("shape", 1_000, 42);
        let landing = load(&dir.0);
        assert_eq!(landing.records.len() as u64, summary.customer_records);
        assert_eq!(
            landing.readings.len() as u64,
            summary.accelerometer_readings
        );
        assert_eq!(landing.steps.len() as u64, summary.step_trainer_readings);

        let customers = latest(&landing.records).len();
        assert_eq!(customers, 1_000);
        let per_customer = landing.readings.len() as f64 / customers as f64;
        assert!(
            (80.0..=100.0).contains(&per_customer),
            "{per_customer} readings per customer"
        );

        // 2 or 3 readings per instant, mostly 3.
        let mut per_instant: HashMap<(String, i64), u32> = HashMap::new();
        for reading in &landing.readings {
            *per_instant
                .entry((key(&reading.user), reading.timestamp))
                .or_default() += 1;
        }
        assert!(per_instant.values().all(|&n| n == 2 || n == 3));
        let threes = per_instant.values().filter(|&&n| n == 3).count();
        assert!(
            threes * 10 > per_instant.len() * 7,
            "mostly 3 readings per instant"
        );
    }

    #[test]
    fn about_half_consent_and_a_fifth_of_their_readings_predate_it() {
        let (dir, _) = generate_into("consent", 2_000, 3);
        let landing = load(&dir.0);
        let latest = latest(&landing.records);
        let consenting: HashMap<&String, i64> = latest
            .iter()
            .filter_map(|(email, record)| record.research.map(|date| (email, date)))
            .collect();
        let share = consenting.len() as f64 / latest.len() as f64;
        assert!((0.45..=0.55).contains(&share), "{share} consent");

        let (mut before, mut all) = (0, 0);
        for reading in &landing.readings {
            if let Some(&date) = consenting.get(&key(&reading.user)) {
                all += 1;
                before += usize::from(reading.timestamp < date);
            }
        }
        let share = before as f64 / all as f64;
        assert!(
            (0.12..=0.30).contains(&share),
            "{share} of readings before consent"
        );
    }

    #[test]
    fn thirty_reused_serials_are_shared_by_many_customers() {
        let (dir, _) = generate_into("serials", 2_000, 5);
        let landing = load(&dir.0);
        let mut holders: HashMap<&str, HashSet<String>> = HashMap::new();
        for record in &landing.records {
            holders
                .entry(&record.serial)
                .or_default()
                .insert(key(&record.email));
        }
        let reused: Vec<_> = holders.iter().filter(|(_, who)| who.len() > 1).collect();
        assert_eq!(reused.len(), POOL_SIZE);
        assert!(reused.iter().all(|(_, who)| who.len() >= 5));
        let pool_customers: usize = reused.iter().map(|(_, who)| who.len()).sum();
        let share = pool_customers as f64 / 2_000.0;
        assert!(
            (0.2..=0.3).contains(&share),
            "{share} carry a reused serial"
        );

        // Some devices have a reused serial: those readings would go to many customers if
        // attributed by serial alone.
        let step_serials: HashSet<&str> = landing.steps.iter().map(|s| s.serial.as_str()).collect();
        let owned = reused
            .iter()
            .filter(|(serial, _)| step_serials.contains(**serial))
            .count();
        assert!(owned >= 20, "{owned} reused serials belong to a device");
    }

    #[test]
    fn every_step_reading_has_exactly_one_phone_of_the_same_customer() {
        let (dir, _) = generate_into("attribution", 2_000, 11);
        let landing = load(&dir.0);
        let latest = latest(&landing.records);
        let mut phones: HashMap<i64, BTreeSet<String>> = HashMap::new();
        for reading in &landing.readings {
            phones
                .entry(reading.timestamp)
                .or_default()
                .insert(key(&reading.user));
        }
        let mut seen = HashSet::new();
        let mut other_customer = 0;
        for step in &landing.steps {
            assert!(
                seen.insert((step.time, step.serial.as_str())),
                "one reading per instant"
            );
            let recorded = phones
                .get(&step.time)
                .expect("a phone recorded at that instant");
            let owners = recorded
                .iter()
                .filter(|email| latest[*email].serial == step.serial)
                .count();
            assert_eq!(owners, 1, "attribution is unambiguous at {}", step.time);
            other_customer += usize::from(recorded.len() > 1);
        }
        let share = other_customer as f64 / landing.steps.len() as f64;
        assert!(
            (0.01..=0.10).contains(&share),
            "{share} of step instants shared"
        );
    }

    #[test]
    fn consent_changes_come_later_in_a_later_file() {
        let (dir, _) = generate_into("changes", 2_000, 13);
        let landing = load(&dir.0);
        let mut by_email: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for record in &landing.records {
            by_email.entry(key(&record.email)).or_default().push(record);
        }
        let changes: Vec<_> = by_email
            .values()
            .filter(|records| records.len() > 1)
            .collect();
        assert!(changes.len() >= 15, "{} consent changes", changes.len());
        let (mut grants, mut revokes, mut recased) = (0, 0, 0);
        for records in changes {
            let [first, second] = records[..] else {
                panic!("at most two records per customer");
            };
            assert!(second.file > first.file);
            assert!(second.last_update > first.last_update);
            assert_eq!(first.serial, second.serial);
            match (first.research, second.research) {
                (None, Some(date)) => {
                    assert_eq!(date, second.last_update);
                    grants += 1;
                }
                (Some(_), None) => revokes += 1,
                _ => panic!("a second record changes research consent"),
            }
            recased += usize::from(first.email != second.email);
        }
        assert!(grants > 0 && revokes > 0 && recased > 0);
    }

    #[test]
    fn some_emails_are_messy_but_still_join() {
        let (dir, _) = generate_into("messy", 1_000, 17);
        let landing = load(&dir.0);
        let emails: HashSet<&str> = landing.records.iter().map(|r| r.email.as_str()).collect();
        let known: HashSet<String> = emails.iter().map(|email| key(email)).collect();
        let messy = landing
            .readings
            .iter()
            .filter(|reading| !emails.contains(reading.user.as_str()))
            .count();
        let share = messy as f64 / landing.readings.len() as f64;
        assert!((0.01..=0.03).contains(&share), "{share} messy users");
        assert!(landing.readings.iter().any(|r| r.user.starts_with(' ')));
        assert!(landing.readings.iter().any(|r| r.user.ends_with(' ')));
        assert!(
            landing
                .readings
                .iter()
                .all(|r| known.contains(&key(&r.user)))
        );
    }

    #[test]
    fn phone_instants_stay_in_their_cohort_window() {
        let job = Job {
            out: Path::new("unused"),
            seed: 9,
            layout: Layout::new(1_000),
            pool: pool_serials(9),
            progress: &quiet,
        };
        for cohort in 0..10 {
            let start = FIRST_WINDOW_START + cohort as i64 * WINDOW_MS;
            for customer in Cohort::build(&job, cohort).customers {
                assert!(customer.instants.is_sorted());
                assert!(
                    customer
                        .instants
                        .iter()
                        .all(|t| (start..start + WINDOW_MS).contains(t))
                );
            }
        }
    }

    #[test]
    fn refuses_a_folder_that_already_holds_files() {
        let dir = TempDir::new("refuse");
        fs::create_dir_all(dir.0.join("customer")).expect("mkdir");
        fs::create_dir_all(dir.0.join("step_trainer")).expect("mkdir");
        let opts = GenerateOptions {
            customers: 4,
            seed: 1,
        };
        generate(&dir.0, &opts, &quiet).expect("empty source folders are fine");
        let again = generate(&dir.0, &opts, &quiet);
        assert!(
            matches!(&again, Err(GenerateError::OutputNotEmpty { path }) if path.ends_with("customer")),
            "{again:?}"
        );

        let other = TempDir::new("refuse-one");
        fs::create_dir_all(other.0.join("accelerometer")).expect("mkdir");
        fs::write(other.0.join("accelerometer/mine.json"), "{}\n").expect("write");
        let refused = generate(&other.0, &opts, &quiet);
        assert!(matches!(refused, Err(GenerateError::OutputNotEmpty { .. })));
        assert!(
            !other.0.join("customer").exists(),
            "nothing written when refused"
        );

        assert!(matches!(
            generate(
                &other.0,
                &GenerateOptions {
                    customers: 0,
                    seed: 1
                },
                &quiet
            ),
            Err(GenerateError::NoCustomers)
        ));
    }

    #[test]
    fn progress_adds_up_to_the_bytes_written() {
        let dir = TempDir::new("progress");
        let reported = AtomicU64::new(0);
        let summary = generate(
            &dir.0,
            &GenerateOptions {
                customers: 300,
                seed: 2,
            },
            &|bytes| {
                reported.fetch_add(bytes, Ordering::Relaxed);
            },
        )
        .expect("generate");
        assert_eq!(reported.load(Ordering::Relaxed), summary.bytes);
    }

    #[test]
    fn axis_values_are_mostly_whole_and_spread_otherwise() {
        let mut rng = Rng::new(1, 2, Purpose::Readings);
        let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
        for _ in 0..200_000 {
            *counts.entry(axis_value(&mut rng)).or_default() += 1;
        }
        assert_eq!(counts.len(), 39, "-1.9 to 1.9 in tenths");
        let whole: u32 = [-10, 0, 10].iter().map(|value| counts[value]).sum();
        assert!(whole > 190_000);
        let odd: Vec<u32> = counts
            .iter()
            .filter(|(value, _)| *value % 10 != 0)
            .map(|(_, &count)| count)
            .collect();
        let (low, high) = (odd.iter().min(), odd.iter().max());
        assert!(low.zip(high).is_some_and(|(low, high)| high * 2 < low * 3));
    }

    #[test]
    fn email_forms_of_names_are_plain_letters() {
        for (display, email) in FIRST_NAMES.iter().chain(LAST_NAMES) {
            assert!(!display.is_empty());
            assert!(
                email.bytes().all(|byte| byte.is_ascii_alphabetic()),
                "{email}"
            );
        }
    }

    #[test]
    fn text_and_numbers_are_valid_json() {
        let mut buf = Vec::new();
        buf.push(b'"');
        push_json_text(&mut buf, "O'Brien \"Zoë\" \\ \n\u{1}");
        buf.push(b'"');
        let text: String = serde_json::from_slice(&buf).expect("valid JSON string");
        assert_eq!(text, "O'Brien \"Zoë\" \\ \n\u{1}");

        for (tenths, expected) in [
            (-10, "-1.0"),
            (0, "0.0"),
            (3, "0.3"),
            (-7, "-0.7"),
            (19, "1.9"),
        ] {
            let mut buf = Vec::new();
            push_tenths(&mut buf, tenths);
            assert_eq!(buf, expected.as_bytes());
        }
        for value in [0, 7, 1_640_995_200_000, u64::MAX] {
            let mut buf = Vec::new();
            push_u64(&mut buf, value);
            assert_eq!(buf, value.to_string().as_bytes());
        }
    }
}
