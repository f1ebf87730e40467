//! The worker engine. (written by the engine author)
