"""Events writes, one module per concern: partners (staff link, event create/update/publish/cancel, check-in),
bookings (booking window, book, cancel with the refund rule), waitlist (promotion, hold expiry), payments
(PaymentIntent start, Stripe events applied once), completion (check-in grace, completing ended events), common
(helpers they share: the clock, seats, the booking lock, work handed to tasks).

Locking order, everywhere: the event row first, then booking rows. Seats move only through
`common._seats_reserve` (a conditional UPDATE that can never take seats_booked above capacity) and
`common._seats_release`. Stripe is never called inside a transaction: refunds and PaymentIntent cancellations run
in Celery tasks after commit, and PaymentIntents are created after the hold is committed (`booking_payment_start`)."""
