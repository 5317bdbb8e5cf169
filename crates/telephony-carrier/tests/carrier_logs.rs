//! What the carrier clients log, in a test process of its own: tracing decides once per call
//! site whether any subscriber listens, and this test's subscriber, set for its own thread, raced
//! with the other carrier tests' threads hitting the same call sites when they ran in one
//! process (seen once in CI: the request lines were missing).

mod carrier {
    mod logs;
    // The shared helpers; this test uses some of them.
    #[allow(dead_code)]
    mod support;
}
