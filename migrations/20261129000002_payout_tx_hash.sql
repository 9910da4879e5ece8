-- The payout's transaction hash (or other reference), recorded by the operator who sent it.
ALTER TABLE withdrawals ADD COLUMN payout_tx_hash TEXT;
