//! A write must update the committed state in place: if anything on the write path
//! still holds a clone of the database's `Arc`, `Arc::make_mut` silently copies the
//! database and the lens's whole history on every APPEND (O(layers) per write; it once
//! cost 100x in single-APPEND throughput). Checked structurally, not by timing: the
//! allocations must be the same before and after.

use std::sync::Arc;
use tau_engine::catalog::Lens;
use tau_engine::driver::SyncDriver;
use tau_engine::Config;

fn addresses(d: &SyncDriver) -> (usize, usize) {
    let db = d.engine.state().db("db").unwrap();
    let Some(Lens::Base(b)) = db.lenses.get("x") else {
        panic!("base lens")
    };
    (Arc::as_ptr(db) as usize, Arc::as_ptr(b) as usize)
}

#[test]
fn appends_do_not_copy_the_database_or_the_lens() {
    let mut d = SyncDriver::new(Config::default());
    d.open(1);
    for s in [
        "CREATE DATABASE db",
        "USE DATABASE db",
        "CREATE LENS x int",
        "APPEND LENS x 0 1 1",
    ] {
        assert_eq!(d.line(1, s), "OK");
    }
    let before = addresses(&d);
    for i in 1..20 {
        assert_eq!(d.line(1, &format!("APPEND LENS x {i} {} {i}", i + 1)), "OK");
        assert_eq!(
            d.line(1, &format!("BATCH APPEND LENS x {{ {i} {} 1 }}", i + 1)),
            "OK"
        );
        assert_eq!(
            addresses(&d),
            before,
            "write {i} copied the database or the lens"
        );
    }
}
