-- The dashboard's charts read one wallet's (or the fee accounts') postings by time: the index
-- on (account, time) serves those ranges and every lookup by account the old one served.
CREATE INDEX postings_by_account_time ON postings (account_id, created_at);
DROP INDEX postings_by_account;
