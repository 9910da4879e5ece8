// `sqlx::migrate!` embeds ./migrations at compile time; without this, adding a migration file
// alone would not rebuild the binary that embeds it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
