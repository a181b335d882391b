//! The protocol scenarios of `shared::testkit`, this time against moto server over HTTP through
//! the real AWS SDK client.

use e2e::stack::Moto;
use shared::testkit;

#[tokio::test]
async fn full_rotation_twice() {
    testkit::full_rotation_twice(&Moto::connect().await, "twice").await;
}

#[tokio::test]
async fn every_step_twice_is_harmless() {
    testkit::every_step_twice(&Moto::connect().await, "twice-each").await;
}

#[tokio::test]
async fn crash_after_every_call_converges() {
    let injected = testkit::crash_after_every_call(&Moto::connect().await, "crash").await;
    assert!(injected >= 10, "only {injected} faults injected");
    println!("faults injected and survived: {injected}");
}

#[tokio::test]
async fn foreign_token_changes_nothing() {
    testkit::foreign_token_changes_nothing(&Moto::connect().await, "foreign").await;
}

#[tokio::test]
async fn finished_rotation_steps_are_noops() {
    testkit::finished_rotation_steps_are_noops(&Moto::connect().await, "finished").await;
}
