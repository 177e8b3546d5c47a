-- The booking dates of what happens to a commitment and an expense after it
-- is made, so as-of questions (stale commitments, themes, fund spending) can
-- answer from what was booked on or before a day instead of from today's
-- status: a commitment's first payment, its settlement and its withdrawal
-- or cancellation, and an expense's reversal.
--
-- Existing rows stay NULL here: projection version 6 wipes the read models
-- and rebuilds them from position zero at its first step, which fills them.
ALTER TABLE rm_commitments ADD COLUMN first_paid_on TEXT;
ALTER TABLE rm_commitments ADD COLUMN settled_on TEXT;
ALTER TABLE rm_commitments ADD COLUMN ended_on TEXT;
ALTER TABLE rm_expenses ADD COLUMN reversed_on TEXT;
