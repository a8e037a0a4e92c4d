""" A subscriber written as for service_framework 0.0.12 (it connects): it writes each
message it gets to the file `output_path` of its config, one JSON line each """

import json

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()
RECEIVED = {'count': 0}


def on_new_message(args, to_send, states, config):
    RECEIVED['count'] += 1
    LOG.info('Got message: %s', args)
    with open(config['output_path'], 'a', encoding='utf-8') as output:
        output.write(json.dumps(args, sort_keys=True) + '\n')


def sigterm_handler(signum, frame, to_send, states, config):
    LOG.info('Subscriber stopping after %s messages', RECEIVED['count'])


connection_models = {
    'in': {
        'subscriber': {
            'connection_type': 'subscriber',
            'required_creation_arguments': {
                'on_new_message': on_new_message,
            },
            'required_arguments': {
                'msg_num': int,
                'text': str,
            },
        }
    }
}

config_model = {
    'required': {
        'output_path': str,
    },
}
