""" A main-mode producer of a delta-update state, written as for service_framework 0.0.12.

`counts` starts from a snapshot, then each delta sets the running total and adds one key
to `seen`. A consumer that joins late gets a snapshot from the state's replyer; `main`
waits until the consumer (asked over `check`) holds the final value.
"""

import time

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def main(to_send, config):
    num_updates = config['num_updates']
    to_send('state', 'counts', {
        'total': 0, 'seen': {}, 'current_num': 0, 'is_snapshot': True,
    })
    for num in range(1, num_updates + 1):
        to_send('state', 'counts', {
            'total': num, 'seen': {str(num): num * num}, 'current_num': num,
            'is_snapshot': False,
        })
    deadline = time.monotonic() + config['converge_timeout_s']
    while True:
        try:
            reply = to_send('connection', 'check', {})
        except Exception as error:  # the consumer is not up yet
            LOG.warning('check failed: %s', error)
            reply = {'total': -1, 'seen_count': -1}
        if reply == {'total': num_updates, 'seen_count': num_updates}:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f'the consumer holds {reply}, not total={num_updates}')
        time.sleep(0.05)
    print(f'consumer converged to total {num_updates}', flush=True)


state_models = {
    'out': {
        'counts': {
            'state_type': 'delta_update_out',
            'required_state_arguments': {
                'current_num': int,
                'is_snapshot': bool,
            },
            'required_arguments': {
                'total': int,
            },
            'optional_arguments': {
                'seen': {str: int},
            },
        }
    }
}

connection_models = {
    'out': {
        'check': {
            'connection_type': 'requester',
            'required_return_arguments': {
                'total': int,
                'seen_count': int,
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
