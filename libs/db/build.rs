// `sqlx::migrate!` embeds the migrations at compile time, but cargo does not know it reads
// that folder: without this, a new migration file leaves a cached build with the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
