//! The exercise of the chapter "lb — a balancer to keep".
