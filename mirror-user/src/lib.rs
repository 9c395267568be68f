//! The mirror agent.
