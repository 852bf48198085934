#!/bin/sh
# The bench's stand-in for `roughy-encode render` in a pod (bench/kube_scale.py): what the
# encoder does over the network, and nothing else. No ffmpeg, a few hundred KiB of memory.
# @ENCODE_SECONDS@ is replaced by the bench; the environment is the Job's (roughy.kube.jobs).
seconds=@ENCODE_SECONDS@
token=$(cat "$ROUGHY_TOKEN_FILE") || exit 1
base="$ROUGHY_API_URL/internal/v1/renders/$ROUGHY_RENDER_ID"
post() { curl -sS -f --retry 3 --retry-all-errors -X POST -H "Authorization: Bearer $token" \
         -H 'Content-Type: application/json' -d "$2" "$base/$1"; }
post inputs '{}' > /dev/null || exit 1
step=$(awk "BEGIN { print $seconds / 10 }")
post progress '{"progress": 0.0, "encoder": null}' > /dev/null
for tenth in 1 2 3 4 5 6 7 8 9; do
  sleep "$step"
  post progress "{\"progress\": 0.${tenth}5}" > /dev/null
done
sleep "$step"
url=$(post output '{}' | sed -n 's/.*"url": *"\([^"]*\)".*/\1/p')
[ -n "$url" ] || exit 1
curl -sS -f --retry 3 -X PUT --data-binary 'bench' "$url" || exit 1
case "$ROUGHY_OUTPUT_CONTENT_TYPE" in
  audio/mpeg) format=mp3 ;;
  *) format=m4a ;;
esac
printf '{"encoder":null,"result":{"format":"%s","width":null,"height":null,"duration":2.0,"size_bytes":5,"video_bitrate_kbps":null,"audio_bitrate_kbps":128,"copied":[]}}' \
  "$format" > "$ROUGHY_TERMINATION_LOG"
echo '{"result":"written"}'
