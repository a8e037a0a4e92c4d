""" A main-mode producer of a full-update state, written as for service_framework 0.0.12.

Its state has only a publisher address (no replyer: no snapshots), so a consumer that joins
late gets the value with the next update: `main` sends its updates, then keeps sending the
last one until the consumer (asked over `check`) holds it.
"""

import time

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def main(to_send, config):
    num_updates = config['num_updates']
    current_num = 0
    for num in range(1, num_updates + 1):
        current_num += 1
        to_send('state', 'num_state', {
            'num': num, 'text': f'update {num}', 'current_num': current_num,
            'is_snapshot': False,
        })
    deadline = time.monotonic() + config['converge_timeout_s']
    while True:
        try:
            reply = to_send('connection', 'check', {})
        except Exception as error:  # the consumer is not up yet
            LOG.warning('check failed: %s', error)
            reply = {'num': -1}
        if reply['num'] == num_updates:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f'the consumer holds {reply}, not num={num_updates}')
        current_num += 1
        to_send('state', 'num_state', {
            'num': num_updates, 'text': f'update {num_updates}',
            'current_num': current_num, 'is_snapshot': False,
        })
        time.sleep(0.05)
    print(f'consumer converged to num {num_updates}', flush=True)


state_models = {
    'out': {
        'num_state': {
            'state_type': 'full_update_out',
            'required_state_arguments': {
                'current_num': int,
                'is_snapshot': bool,
            },
            'required_arguments': {
                'num': int,
                'text': str,
            },
        }
    }
}

connection_models = {
    'out': {
        'check': {
            'connection_type': 'requester',
            'required_return_arguments': {
                'num': int,
            },
        }
    }
}

config_model = {
    'required': {
        'num_updates': int,
    },
    'optional': {
        'converge_timeout_s': float,
    },
}


def setup_config(config):
    return {'optional': {'converge_timeout_s': config.get('converge_timeout_s', 20.0)}}
