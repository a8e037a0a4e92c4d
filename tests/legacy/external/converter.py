""" A replyer written as for service_framework 0.0.12 that converts amounts to USD through
an `external_request` connection (`func_to_call`) """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()
RATES_TO_USD = {'EUR': 1.25, 'GBP': 1.5}


def look_up_rate(currency):
    """ The external call: an ordinary function, called with the connection's arguments """
    return {'rate': RATES_TO_USD[currency]}


def on_new_request(args, to_send, states, config):
    rate = to_send('connection', 'rates', {'currency': args['currency']})['rate']
    LOG.info('%s %s at %s', args['amount'], args['currency'], rate)
    return {'usd': round(args['amount'] * rate, config['decimals']), 'rate': rate}


connection_models = {
    'in': {
        'convert': {
            'connection_type': 'replyer',
            'required_creation_arguments': {
                'on_new_request': on_new_request,
            },
            'required_arguments': {
                'currency': str,
                'amount': int,
            },
            'required_return_arguments': {
                'usd': float,
                'rate': float,
            },
        }
    },
    'out': {
        'rates': {
            'connection_type': 'external_request',
            'required_creation_arguments': {
                'func_to_call': look_up_rate,
            },
            'required_arguments': {
                'currency': str,
            },
            'required_return_arguments': {
                'rate': float,
            },
        }
    },
}

config_model = {
    'required': {
        'decimals': int,
    },
}
