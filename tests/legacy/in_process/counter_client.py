""" A service written as for service_framework 0.0.12 whose `init_function` asks the
counter `num_req_to_send` times and writes each value it gets to `output_path` """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def init_function(to_send, states, config):
    values = []
    for _ in range(config['num_req_to_send']):
        values.append(to_send('connection', 'increment', {'step': config['step']})['value'])
    LOG.info('Counter values: %s', values)
    with open(config['output_path'], 'w', encoding='utf-8') as output:
        output.write(' '.join(str(value) for value in values) + '\n')


connection_models = {
    'out': {
        'increment': {
            'connection_type': 'requester',
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
        'num_req_to_send': int,
        'output_path': str,
    },
    'optional': {
        'step': int,
    },
}


def setup_config(config):
    return {'step': config.get('step', 1)}
