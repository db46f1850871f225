#!/usr/bin/env bash
# Regenerate the example speech in examples/ (needs Debian's espeak-ng, sox and ffmpeg:
#   apt-get install -y espeak-ng sox ffmpeg).
# The files are committed, so neither the tests nor the demo need these tools.
set -euo pipefail
cd "$(dirname "$0")/../examples"

say() {  # say NAME TEXT: NAME.wav (16 kHz mono 16-bit) and NAME.txt
  local name=$1 text=$2
  printf '%s\n' "$text" > "$name.txt"
  espeak-ng -v en-us -s 150 -w "/tmp/$name.22k.wav" "$text"
  sox "/tmp/$name.22k.wav" -r 16000 -c 1 -b 16 "$name.wav"
  rm -f "/tmp/$name.22k.wav"
}

say meeting "Good morning everyone. Let's review the quarterly budget and the hiring plan before Friday."
say standup "Yesterday I fixed the login bug. Today I will write the release notes and update the documentation."

# The same speech in the other containers the service accepts.
ffmpeg -loglevel error -y -i meeting.wav -c:a flac meeting.flac
ffmpeg -loglevel error -y -i meeting.wav -c:a libmp3lame -b:a 48k meeting.mp3
ffmpeg -loglevel error -y -i meeting.wav -c:a aac -b:a 48k meeting.m4a
ffmpeg -loglevel error -y -i meeting.wav -c:a libvorbis -q:a 3 meeting.ogg


# A long natural passage for benchmarks (about 2 minutes), kept small as OGG Vorbis.
espeak-ng -v en-us -s 160 -f passage.txt -w /tmp/passage.22k.wav
sox /tmp/passage.22k.wav -r 16000 -c 1 /tmp/passage.wav
ffmpeg -loglevel error -y -i /tmp/passage.wav -c:a libvorbis -q:a 1 passage.ogg
rm -f /tmp/passage.22k.wav /tmp/passage.wav
# Other languages for the multilingual model (base): short, kept small as OGG Vorbis.
speak_in() {  # speak_in NAME VOICE TEXT
  local name=$1 voice=$2 text=$3
  printf '%s\n' "$text" > "$name.txt"
  espeak-ng -v "$voice" -s 130 -w "/tmp/$name.22k.wav" "$text"
  sox "/tmp/$name.22k.wav" -r 16000 -c 1 "/tmp/$name.wav"
  ffmpeg -loglevel error -y -i "/tmp/$name.wav" -c:a libvorbis -q:a 2 "$name.ogg"
  rm -f "/tmp/$name.22k.wav" "/tmp/$name.wav"
}
speak_in french fr "Bonjour à tous. Nous allons parler du budget de l'année prochaine et du plan de recrutement. Merci beaucoup."
speak_in german de "Guten Morgen zusammen. Heute besprechen wir das Budget für das nächste Jahr und den Einstellungsplan."
speak_in spanish es "Buenos días a todos. Hoy vamos a hablar del presupuesto del próximo año y del plan de contratación."

# A two-speaker dialogue with its reference turns (dialogue.rttm), for the diarization tests.
../.venv/bin/python ../benchmarks/dialogues.py . --speakers 2 --minutes 1 --seed 3 --name dialogue --ogg

ls -l
