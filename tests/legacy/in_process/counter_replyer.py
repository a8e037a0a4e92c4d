""" A replyer written as for service_framework 0.0.12 whose `init_function` sets up its
counter from the config before it serves """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()
COUNTER = {'value': None}


def init_function(to_send, states, config):
    COUNTER['value'] = config['start']
    LOG.info('Counter starts at %s', COUNTER['value'])


def on_new_request(args, to_send, states, config):
    COUNTER['value'] += args['step']
    return {'value': COUNTER['value']}


connection_models = {
    'in': {
        'increment': {
            'connection_type': 'replyer',
            'required_creation_arguments': {
                'on_new_request': on_new_request,
            },
            'required_arguments': {
                'step': int,
            },
            'required_return_arguments': {
                'value': int,
            },
        }
    }
}

config_model = {
    'required': {
        'start': int,
    },
}
