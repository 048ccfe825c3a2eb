-- Stored metadata no longer repeats the keys the columns own (dataset, tier,
-- length, created_at): the importer strips them, and the API objects are
-- built with them from the columns. Strip them from rows written before.
-- (Such rows' content hashes were computed with the keys in, so their next
-- import counts them as updated once.)
UPDATE conversations
SET metadata = json_merge_patch(metadata, '{"dataset":null,"tier":null,"length":null,"created_at":null}')
WHERE metadata IS NOT NULL
  AND (json_exists(metadata, '$.dataset') OR json_exists(metadata, '$.tier')
       OR json_exists(metadata, '$.length') OR json_exists(metadata, '$.created_at'));
