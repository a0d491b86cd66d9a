"""Community writes, one module per concept: campaigns (ambassadors, holdout, what they received), referrals
(codes, attribution, conversions), ideas (rounds, posting, votes, moderation, status, funding), polls, comments,
influence (the per-customer metric segment rules read)."""
