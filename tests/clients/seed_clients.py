"""Clients written as the three seed documents write them, run against `acestep serve`.

Usage: python seed_clients.py BASE_URL API_KEY OUT_DIR
Only the base URL and the token differ from the seeds' code. Exits non-zero on any mismatch.
"""
import os
import sys
import time

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder

BASE, TOKEN, OUT = sys.argv[1], sys.argv[2], sys.argv[3]


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


# ---- seed 000: async task API (the seed's query() verbatim, smaller duration / steps) ----
API_URL = BASE + "/v1/async/music/generations"
headers = {
    "Authorization": "Bearer " + TOKEN,
}


def query(payload):
    data = {}
    for key, value in payload.items():
        if value is None:
            data[key] = ""
        elif isinstance(value, list):
            data[key] = ",".join(map(str, value))
        elif isinstance(value, bool):
            data[key] = str(value).lower()
        else:
            data[key] = str(value)
    multipart_data = MultipartEncoder(fields=data)
    headers["Content-Type"] = multipart_data.content_type
    response = requests.post(API_URL, headers=headers, data=multipart_data)
    return response.json()


output = query({
    "model": "ACE-Step-v1-3.5B",
    "task": "text2music",
    "duration": 2,
    "prompt": "pop, synth, drums, guitar, 120 bpm, upbeat, catchy, vibrant, female vocals, polished vocals",
    "lyrics": "",
    "infer_steps": 6,
    "lora_name": 'None',
    "guidance_scale": 15,
    "guidance_scale_text": 0,
    "guidance_scale_lyric": 0,
    "scheduler_type": "euler",
    "cfg_type": "apg",
    "omega_scale": 10,
    "guidance_interval": 0.5,
    "guidance_interval_decay": 0,
    "min_guidance_scale": 3,
    "use_erg_tag": True,
    "use_erg_lyric": True,
    "use_erg_diffusion": True,
    "manual_seeds": [5],
    "oss_steps": None,
})
check("urls" in output, "seed 000 submit response has urls: %r" % output)
query_url = output["urls"]["get"]
del headers["Content-Type"]
t0 = time.time()
while True:
    resp = requests.get(query_url, headers=headers).json()
    print("task status: ", resp["status"])
    if resp["status"] == "failure":
        print(resp)
        print("task failed")
        os._exit(1)
    if resp["status"] == "success":
        break
    check(time.time() - t0 < 300, "seed 000 task finishes")
    time.sleep(0.5)
file_url = resp["output"]["file_url"]
print('final url ', file_url)
resp = requests.get(file_url)
check(resp.status_code == 200 and resp.headers["content-type"] == "audio/mpeg", "seed 000 download")
with open(os.path.join(OUT, "output.mp3"), "wb") as f:
    f.write(resp.content)
quota = requests.get(BASE + "/v1/tasks/available-quota", headers=headers).json()
check(quota["available_quota"] == quota["total_quota"], "quota is free again: %r" % quota)
status = requests.get(BASE + "/v1/task/%s/status" % output["task_id"], headers=headers).json()
check(status["status"] == "success", "seed 000 status API")
bad = requests.get(query_url, headers={"Authorization": "Bearer wrong"})
check(bad.status_code == 401, "seed 000: wrong token is 401")

# ---- seed 001: producer tasks API ----
auth = {"accept": "application/json", "authorization": "Bearer " + TOKEN,
        "content-type": "application/json"}
lyric = "[Verse]\nWoke up with the sun in my eyes\n[Chorus]\nHappy days are rolling in"
gen = requests.post(BASE + "/producer/audios", headers=auth, json={
    "action": "generate", "model": "FUZZ-2.0 Pro", "instrumental": True, "lyric": lyric,
    "custom": True, "prompt": "happy pop", "duration": 2, "infer_steps": 4, "manual_seeds": "9",
}).json()
check(gen.get("success") is True and gen["data"][0]["state"] == "succeeded", "seed 001 sync generate: %r" % gen)
check(gen["data"][0]["seed"] == "9", "seed 001 seed string")
task_id = gen["task_id"]
rec = requests.post(BASE + "/producer/tasks", headers=auth, json={"id": task_id, "action": "retrieve"}).json()
for key in ["id", "created_at", "request", "response", "duration", "finished_at", "trace_id"]:
    check(key in rec, "seed 001 record has %s" % key)
check(rec["response"]["task_id"] == task_id, "seed 001 response.task_id")
item = rec["response"]["data"][0]
for key in ["id", "title", "lyric", "audio_url", "seed", "created_at", "model", "progress", "state", "duration"]:
    check(key in item, "seed 001 data item has %s" % key)
check(requests.get(item["audio_url"]).status_code == 200, "seed 001 audio_url downloads")
batch = requests.post(BASE + "/producer/tasks", headers=auth,
                      json={"ids": [task_id, task_id], "action": "retrieve_batch"}).json()
check(batch["count"] == 2 and len(batch["items"]) == 2, "seed 001 retrieve_batch")
err = requests.post(BASE + "/producer/tasks", headers={"authorization": "Bearer nope"}, json={"id": task_id, "action": "retrieve"})
check(err.status_code == 401 and err.json()["error"]["code"] == "invalid_token" and err.json()["success"] is False,
      "seed 001 error format")

# ---- seed 002: ACE-Step API server ----
bearer = {"Authorization": "Bearer " + TOKEN}
job = requests.post(BASE + "/v1/music/generate", headers=bearer,
                    json={"caption": "upbeat pop song", "lyrics": "", "inference_steps": 4, "audio_duration": 2}).json()
check(job["status"] in ("queued", "running") and "queue_position" in job, "seed 002 JSON submit: %r" % job)
form = requests.post(BASE + "/v1/music/generate", headers=bearer,
                     data={"caption": "upbeat pop song", "inference_steps": "4", "audio_duration": "2"}).json()
check("job_id" in form, "seed 002 form submit: %r" % form)
for job_id in [job["job_id"], form["job_id"]]:
    t0 = time.time()
    while True:
        r = requests.get(BASE + "/v1/jobs/" + job_id, headers=bearer).json()
        if r["status"] in ("succeeded", "failed"):
            break
        check(time.time() - t0 < 300, "seed 002 job finishes")
        time.sleep(0.5)
    check(r["status"] == "succeeded", "seed 002 job: %r" % r)
    res = r["result"]
    for key in ["first_audio_path", "audio_paths", "generation_info", "status_message", "seed_value"]:
        check(key in res, "seed 002 result has %s" % key)
    check(requests.get(res["first_audio_path"]).status_code == 200, "seed 002 audio downloads")
# The seed's "File Upload Method": repaint an uploaded song (the one just generated).
song = os.path.join(OUT, "seed002_song.mp3")
with open(song, "wb") as f:
    f.write(requests.get(res["first_audio_path"]).content)
with open(song, "rb") as f:
    up = requests.post(BASE + "/v1/music/generate", headers=bearer,
                       data={"caption": "remix this song", "task_type": "repaint", "inference_steps": "4",
                             "repainting_start": "0.5", "repainting_end": "1.5"},
                       files={"src_audio": f}).json()
check("job_id" in up, "seed 002 file upload submit: %r" % up)
t0 = time.time()
while True:
    r = requests.get(BASE + "/v1/jobs/" + up["job_id"], headers=bearer).json()
    if r["status"] in ("succeeded", "failed"):
        break
    check(time.time() - t0 < 300, "seed 002 repaint finishes")
    time.sleep(0.5)
check(r["status"] == "succeeded", "seed 002 repaint job: %r" % r)
check(requests.get(r["result"]["first_audio_path"]).status_code == 200, "seed 002 repainted audio downloads")
lm = requests.post(BASE + "/v1/music/generate", headers=bearer, json={"caption": "x", "use_5hz_lm": True})
check(lm.status_code == 400 and "detail" in lm.json(), "seed 002 5 Hz LM refused")
print("OK: all three seed clients work")
