-- What the web app's Mijn wijk page asks besides the API: a wijk's
-- commitments, and the postings of each (what is still committed and what
-- was paid on it as of a day). Without these, both scan whole tables.
CREATE INDEX rm_commitments_wijk ON rm_commitments (wijk_id, decided_on);
CREATE INDEX rm_postings_commitment ON rm_postings (commitment_id) WHERE commitment_id IS NOT NULL;
