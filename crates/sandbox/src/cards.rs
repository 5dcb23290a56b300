//! Test cards: the card number alone decides what an S2S charge does (Stripe's numbers).

/// What a test card does when charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    /// The charge succeeds.
    Succeeds,
    /// The charge fails with this reason (also the notification's `reason`).
    Declined(&'static str),
    /// The customer must complete 3-D Secure first.
    RequiresAction,
}

/// Succeeds.
pub const CARD_SUCCEEDS: &str = "4242424242424242";
/// Declined: "Your card was declined."
pub const CARD_DECLINED: &str = "4000000000000002";
/// Declined: "Your card has insufficient funds."
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Requires 3-D Secure.
pub const CARD_REQUIRES_3DS: &str = "4000002500003155";

/// The reason of a generic decline.
pub const DECLINED_REASON: &str = "Your card was declined.";
/// The reason of an insufficient-funds decline.
pub const INSUFFICIENT_FUNDS_REASON: &str = "Your card has insufficient funds.";

/// The behaviour of a card number; any number not listed succeeds.
pub fn behaviour(number: &str) -> CardBehaviour {
    match number {
        CARD_DECLINED => CardBehaviour::Declined(DECLINED_REASON),
        CARD_INSUFFICIENT_FUNDS => CardBehaviour::Declined(INSUFFICIENT_FUNDS_REASON),
        CARD_REQUIRES_3DS => CardBehaviour::RequiresAction,
        _ => CardBehaviour::Succeeds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_cards_and_the_rest() {
        assert_eq!(behaviour(CARD_SUCCEEDS), CardBehaviour::Succeeds);
        assert_eq!(
            behaviour(CARD_DECLINED),
            CardBehaviour::Declined(DECLINED_REASON)
        );
        assert_eq!(
            behaviour(CARD_INSUFFICIENT_FUNDS),
            CardBehaviour::Declined(INSUFFICIENT_FUNDS_REASON)
        );
        assert_eq!(behaviour(CARD_REQUIRES_3DS), CardBehaviour::RequiresAction);
        assert_eq!(behaviour("5555555555554444"), CardBehaviour::Succeeds);
    }
}
