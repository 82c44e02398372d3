//! `sqlx::migrate!` embeds the files of `migrations/` when the crate is
//! compiled, and cargo does not watch them: rebuild when one is added or
//! changed, so a new migration is never left out of the binary.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
