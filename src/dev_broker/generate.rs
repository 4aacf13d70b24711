//! Made-up but plausible directories: people with unique emails, team groups of uneven sizes, and a few
//! groups per person. Everything follows the seed, so a seed always gives the same directory.
//!
//! Below the model: it makes plain data (names, ids, whole directories) that the model loads, and knows
//! nothing of the model itself.

use super::objects::Millis;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;
use ulid::Ulid;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub users: u32,
    pub groups: u32,
    /// The average number of groups a user is in.
    pub memberships_per_user: f64,
    /// The share of users generated inactive.
    pub inactive_share: f64,
}

/// 2025-01-06T09:00:00.000Z: generated objects are created from then on, so a seed gives the same ids.
const GENERATED_FROM: Millis = 1_736_154_000_000;
const DAY: Millis = 86_400_000;

pub(crate) const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "People",
    "Legal",
    "Customer Support",
    "Product",
    "Design",
    "Operations",
    "Security",
    "IT",
    "Data",
    "Customer Success",
    "Research",
    "Facilities",
    "Procurement",
    "Partnerships",
    "Communications",
    "Quality",
];

const TEAM_QUALIFIERS: &[&str] = &[
    "Platform",
    "EMEA",
    "APAC",
    "Americas",
    "Leads",
    "Managers",
    "Interns",
    "On-call",
    "Contractors",
    "Berlin",
    "London",
    "New York",
    "Tokyo",
    "Sao Paulo",
    "Sydney",
    "Toronto",
    "Paris",
    "Madrid",
    "Singapore",
    "Austin",
    "Dublin",
    "Bangalore",
    "Mobile",
    "Web",
    "Infrastructure",
    "Analytics",
    "Enterprise",
    "SMB",
    "Growth",
    "Onboarding",
    "Compliance",
    "Tooling",
    "Reliability",
    "Payments",
    "Identity",
    "Search",
    "Billing",
    "Field",
    "Inside",
    "Enablement",
    "Strategy",
    "Admins",
    "Reviewers",
    "Mentors",
    "Champions",
    "Guild",
    "Working Group",
    "Council",
    "Alumni",
    "All Hands",
];

pub(crate) const JOB_TITLES: &[&str] = &[
    "Software Engineer",
    "Senior Software Engineer",
    "Staff Engineer",
    "Engineering Manager",
    "Product Manager",
    "Product Designer",
    "Data Analyst",
    "Data Scientist",
    "Account Executive",
    "Sales Development Representative",
    "Solutions Engineer",
    "Marketing Manager",
    "Content Strategist",
    "Financial Analyst",
    "Controller",
    "Recruiter",
    "People Partner",
    "Counsel",
    "Support Specialist",
    "Support Engineer",
    "Customer Success Manager",
    "Operations Manager",
    "Security Engineer",
    "IT Administrator",
    "Research Scientist",
    "Office Manager",
    "Buyer",
    "Partner Manager",
    "Communications Lead",
    "QA Engineer",
    "Director",
    "Vice President",
];

const FIRST_NAMES: &[&str] = &[
    "Aaliyah",
    "Aarav",
    "Abigail",
    "Adebayo",
    "Aiko",
    "Alejandro",
    "Alice",
    "Amara",
    "Amir",
    "Ana",
    "Andrei",
    "Anika",
    "Arjun",
    "Ava",
    "Beatriz",
    "Benjamin",
    "Bilal",
    "Camila",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "Dario",
    "Deepika",
    "Diego",
    "Dmitri",
    "Elena",
    "Elif",
    "Emeka",
    "Emily",
    "Emma",
    "Ethan",
    "Fatima",
    "Felix",
    "Freya",
    "Gabriel",
    "Grace",
    "Hana",
    "Hannah",
    "Hiroshi",
    "Ibrahim",
    "Ines",
    "Isabella",
    "Ivan",
    "Jack",
    "Jamal",
    "James",
    "Jia",
    "Jonas",
    "Jorge",
    "Julia",
    "Kai",
    "Kavya",
    "Kenji",
    "Kwame",
    "Lars",
    "Layla",
    "Leila",
    "Liam",
    "Lucas",
    "Lucia",
    "Maria",
    "Mateo",
    "Maya",
    "Mei",
    "Mohammed",
    "Nadia",
    "Naomi",
    "Nikhil",
    "Noah",
    "Nour",
    "Oliver",
    "Olivia",
    "Omar",
    "Oscar",
    "Priya",
    "Rafael",
    "Rahul",
    "Rosa",
    "Sakura",
    "Samuel",
    "Santiago",
    "Sara",
    "Sebastian",
    "Sofia",
    "Sophie",
    "Tariq",
    "Thabo",
    "Thomas",
    "Tomas",
    "Valentina",
    "Victor",
    "Wei",
    "William",
    "Xin",
    "Yara",
    "Yusuf",
    "Zainab",
    "Zara",
    "Zoe",
];

const LAST_NAMES: &[&str] = &[
    "Abara",
    "Adeyemi",
    "Ahmed",
    "Alvarez",
    "Andersen",
    "Bauer",
    "Becker",
    "Bianchi",
    "Brown",
    "Castillo",
    "Chen",
    "Costa",
    "Cruz",
    "Das",
    "Davis",
    "Dubois",
    "Duarte",
    "Eriksson",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Gonzalez",
    "Gupta",
    "Haddad",
    "Hansen",
    "Hernandez",
    "Hoffmann",
    "Hughes",
    "Ibrahim",
    "Ito",
    "Jackson",
    "Jensen",
    "Johnson",
    "Kang",
    "Kaur",
    "Khan",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Lee",
    "Lopez",
    "Martin",
    "Martinez",
    "Mensah",
    "Meyer",
    "Moreau",
    "Muller",
    "Murphy",
    "Nakamura",
    "Nguyen",
    "Nielsen",
    "Novak",
    "Obi",
    "OBrien",
    "Okafor",
    "Olsen",
    "Park",
    "Patel",
    "Perez",
    "Petrov",
    "Popescu",
    "Quinn",
    "Ramirez",
    "Reddy",
    "Ricci",
    "Rodriguez",
    "Rossi",
    "Sato",
    "Schmidt",
    "Schneider",
    "Silva",
    "Singh",
    "Smith",
    "Sokolov",
    "Suzuki",
    "Tanaka",
    "Taylor",
    "Thompson",
    "Torres",
    "Tran",
    "Van Dijk",
    "Vargas",
    "Walker",
    "Wang",
    "Weber",
    "White",
    "Williams",
    "Wilson",
    "Wong",
    "Wu",
    "Yamamoto",
    "Yang",
    "Yilmaz",
    "Young",
    "Zhang",
    "Zhao",
    "Zimmermann",
    "Zulu",
    "Achebe",
];

/// A made-up person; `department` and `job_title` index [`DEPARTMENTS`] and [`JOB_TITLES`].
pub(crate) struct Person {
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub department: u8,
    pub job_title: u8,
}

impl Person {
    pub fn random(rng: &mut StdRng) -> Person {
        Person {
            first_name: FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
            last_name: LAST_NAMES[rng.random_range(0..LAST_NAMES.len())],
            department: rng.random_range(0..DEPARTMENTS.len()) as u8,
            job_title: rng.random_range(0..JOB_TITLES.len()) as u8,
        }
    }
}

/// Mints ULIDs that never go backwards, from a seeded generator.
pub(crate) struct IdMint {
    last: Ulid,
}

impl IdMint {
    pub fn new() -> Self {
        IdMint { last: Ulid::nil() }
    }

    /// A fresh id with `prefix`, time-ordered at `at`.
    pub fn id(&mut self, rng: &mut StdRng, prefix: &str, at: Millis) -> String {
        let candidate = Ulid::from_parts(at.max(0) as u64, rng.random::<u128>());
        let id = if candidate > self.last {
            candidate
        } else {
            self.last.increment().unwrap_or(candidate)
        };
        self.last = id;
        format!("{prefix}{id}")
    }
}

/// A name as it appears in an email address: lowercase letters and digits.
pub(crate) fn email_part(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `n` random letters and digits.
pub(crate) fn token(rng: &mut StdRng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn from_alphabet(rng: &mut StdRng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

fn uuid(rng: &mut StdRng) -> String {
    let hex = from_alphabet(rng, b"0123456789abcdef", 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const DIGITS: &[u8] = b"0123456789";

/// A user id in the style of the directory's provider.
pub(crate) fn idp_user_id(directory_type: &str, rng: &mut StdRng) -> String {
    match directory_type {
        "okta scim v2.0" => format!("00u{}", token(rng, 17)),
        "gsuite directory" => format!("1{}", from_alphabet(rng, DIGITS, 20)),
        "jump cloud scim v2.0" | "rippling scim v2.0" => from_alphabet(rng, HEX, 24),
        "onelogin scim v2.0" => format!("1{}", from_alphabet(rng, DIGITS, 8)),
        _ => uuid(rng),
    }
}

/// A group id in the style of the directory's provider (Okta's is the group's display name).
pub(crate) fn idp_group_id(directory_type: &str, name: &str, rng: &mut StdRng) -> String {
    match directory_type {
        "okta scim v2.0" => name.to_string(),
        "gsuite directory" => format!("0{}", from_alphabet(rng, LOWER_ALNUM, 14)),
        "jump cloud scim v2.0" | "rippling scim v2.0" => from_alphabet(rng, HEX, 24),
        "onelogin scim v2.0" => format!("{}", rng.random_range(100_000..999_999)),
        _ => uuid(rng),
    }
}

/// The `i`-th generated group name: departments, then teams within them, numbered once all are used.
fn group_name(i: usize) -> String {
    let d = DEPARTMENTS.len();
    if i < d {
        return DEPARTMENTS[i].to_string();
    }
    let j = i - d;
    let combos = d * TEAM_QUALIFIERS.len();
    let name = format!(
        "{} {}",
        DEPARTMENTS[j % d],
        TEAM_QUALIFIERS[(j / d) % TEAM_QUALIFIERS.len()]
    );
    match j / combos {
        0 => name,
        round => format!("{name} {}", round + 1),
    }
}

/// A random team name, for groups made while the broker runs.
pub(crate) fn team_name(rng: &mut StdRng) -> String {
    format!(
        "{} {}",
        DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())],
        TEAM_QUALIFIERS[rng.random_range(0..TEAM_QUALIFIERS.len())]
    )
}

/// How many groups a user joins: `average` on the whole, spread by up to two either way.
fn memberships_for(rng: &mut StdRng, average: f64, groups: u32) -> u32 {
    let base = average.floor().max(0.0);
    let mut k = base as i64 + i64::from(rng.random_bool((average - base).clamp(0.0, 1.0)));
    let spread = (base as i64).min(2);
    if spread > 0 {
        k += rng.random_range(-spread..=spread);
    }
    (k.max(0) as u32).min(groups)
}

/// A generated group.
pub(crate) struct GeneratedGroup {
    pub id: String,
    pub idp_id: String,
    pub name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A generated user; `groups` index [`GeneratedDirectory::groups`].
pub(crate) struct GeneratedUser {
    pub id: String,
    pub idp_id: String,
    pub email: String,
    pub person: Person,
    pub active: bool,
    pub role: &'static str,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub groups: Vec<usize>,
}

/// The groups and users of one generated directory, in creation order.
pub(crate) struct GeneratedDirectory {
    pub groups: Vec<GeneratedGroup>,
    pub users: Vec<GeneratedUser>,
}

/// Generates the groups, users and memberships of a directory of `directory_type` whose users' emails
/// are at `domain`; ids come from `mint`, everything else from `rng`.
pub(crate) fn directory(
    rng: &mut StdRng,
    mint: &mut IdMint,
    directory_type: &str,
    domain: &str,
    options: &GenerateOptions,
) -> GeneratedDirectory {
    let mut groups = Vec::with_capacity(options.groups as usize);
    let mut at = GENERATED_FROM;
    for i in 0..options.groups as usize {
        at += 600_000 + rng.random_range(0..60_000);
        let name = group_name(i);
        let idp_id = idp_group_id(directory_type, &name, rng);
        let updated_at = if rng.random_bool(0.3) {
            at + rng.random_range(0..30 * DAY)
        } else {
            at
        };
        groups.push(GeneratedGroup {
            id: mint.id(rng, "directory_group_", at),
            idp_id,
            name,
            created_at: at,
            updated_at,
        });
    }
    let mut users = Vec::with_capacity(options.users as usize);
    let mut at = GENERATED_FROM + 8 * DAY;
    let mut taken: HashMap<(usize, usize), u32> = HashMap::new();
    for _ in 0..options.users {
        at += rng.random_range(500..1500);
        let (f, l) = (
            rng.random_range(0..FIRST_NAMES.len()),
            rng.random_range(0..LAST_NAMES.len()),
        );
        let (first_name, last_name) = (FIRST_NAMES[f], LAST_NAMES[l]);
        let seen = taken.entry((f, l)).or_insert(0);
        *seen += 1;
        let base = format!("{}.{}", email_part(first_name), email_part(last_name));
        let email = if *seen == 1 {
            format!("{base}@{domain}")
        } else {
            format!("{base}{seen}@{domain}")
        };
        let active = !rng.random_bool(options.inactive_share.clamp(0.0, 1.0));
        let role = if rng.random_bool(0.03) {
            "admin"
        } else {
            "member"
        };
        let updated_at = if rng.random_bool(0.5) {
            at + rng.random_range(0..60 * DAY)
        } else {
            at
        };
        let id = mint.id(rng, "directory_user_", at);
        let idp_id = idp_user_id(directory_type, rng);
        let person = Person {
            first_name,
            last_name,
            department: rng.random_range(0..DEPARTMENTS.len()) as u8,
            job_title: rng.random_range(0..JOB_TITLES.len()) as u8,
        };
        // Early groups are the big ones: squaring a uniform draw favours low indexes.
        let k = memberships_for(rng, options.memberships_per_user, options.groups);
        let mut chosen = Vec::with_capacity(k as usize);
        let mut attempts = 0;
        while chosen.len() < k as usize {
            attempts += 1;
            let i = if attempts < 64 {
                let u: f64 = rng.random();
                ((u * u) * groups.len() as f64) as usize
            } else {
                // Nearly every group is taken: fall back to the first free one.
                (0..groups.len()).find(|i| !chosen.contains(i)).unwrap_or(0)
            };
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        users.push(GeneratedUser {
            id,
            idp_id,
            email,
            person,
            active,
            role,
            created_at: at,
            updated_at,
            groups: chosen,
        });
    }
    GeneratedDirectory { groups, users }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_unique() {
        let names: std::collections::HashSet<String> = (0..3000).map(group_name).collect();
        assert_eq!(names.len(), 3000);
    }

    #[test]
    fn memberships_average_what_was_asked() {
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(7);
        let total: u64 = (0..100_000)
            .map(|_| u64::from(memberships_for(&mut rng, 3.0, 1000)))
            .sum();
        let average = total as f64 / 100_000.0;
        assert!((average - 3.0).abs() < 0.05, "{average}");
        let total: u64 = (0..10_000)
            .map(|_| u64::from(memberships_for(&mut rng, 0.5, 10)))
            .sum();
        assert!((total as f64 / 10_000.0 - 0.5).abs() < 0.05);
    }
}
