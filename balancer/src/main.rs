//! `lb`: flags and config file in, the balancer out. (Being written.)

fn main() {}
