# shellcheck shell=sh
# Takes URL (a health endpoint), CURL_TLS (curl's TLS options for it), EXPECT (text its answer
# holds), SECONDS_MAX and WHAT (for the error).
# shellcheck disable=SC2086
for _ in $(seq 1 "$SECONDS_MAX"); do
  if curl -fsS --max-time 2 $CURL_TLS "$URL" 2>/dev/null | grep -q "$EXPECT"; then exit 0; fi
  sleep 1
done
echo "$WHAT did not become healthy within $SECONDS_MAX s ($URL)" >&2
exit 1
