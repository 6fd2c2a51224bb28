# Runs moto in server mode on 127.0.0.1 and exits when the process that started it goes away, so a test
# binary that is killed (or a static server that is never dropped) never leaves a moto process behind.
import logging
import os
import sys
import time

from moto.server import ThreadedMotoServer

# werkzeug logs every request; nobody reads it, and a full pipe would block the server
logging.getLogger("werkzeug").setLevel(logging.ERROR)
parent = os.getppid()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
if "--daemon" in sys.argv:
    # the local emulator of `cargo xtask ... --local`: lives until `cargo xtask local stop`
    while True:
        time.sleep(3600)
while os.getppid() == parent:
    time.sleep(0.3)
os._exit(0)
