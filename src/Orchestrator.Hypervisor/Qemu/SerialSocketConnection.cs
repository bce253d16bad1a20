// A client of QEMU's serial-port socket (the con0 chardev): drains the guest's output always, writes input in order.
using System.Net.Sockets;

namespace Orchestrator.Hypervisor.Qemu;

internal sealed class SerialSocketConnection : IConsoleConnection
{
    private const int ChunkSize = 4096;

    private readonly Socket _socket;
    private readonly Action<byte[]> _onOutput;
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private readonly TaskCompletionSource<string> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _reading = Task.CompletedTask;
    private int _disposed;

    private SerialSocketConnection(Socket socket, Action<byte[]> onOutput)
    {
        _socket = socket;
        _onOutput = onOutput;
    }

    public Task<string> Closed => _closed.Task;

    public static async Task<SerialSocketConnection> ConnectAsync(string path, Action<byte[]> onOutput, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
        }
        catch (Exception ex)
        {
            socket.Dispose();
            throw ex is OperationCanceledException ? ex : new HypervisorException($"cannot connect to the serial console at {path}: {ex.Message}", ex);
        }

        var connection = new SerialSocketConnection(socket, onOutput);
        connection._reading = Task.Run(connection.DrainAsync, CancellationToken.None);
        return connection;
    }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> input, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        await _writing.WaitAsync(cancellationToken);
        try
        {
            while (!input.IsEmpty)
            {
                var sent = await _socket.SendAsync(input, SocketFlags.None, cancellationToken);
                input = input[sent..];
            }
        }
        catch (SocketException ex)
        {
            throw new HypervisorException($"the serial console closed: {ex.Message}", ex);
        }
        finally
        {
            _writing.Release();
        }
    }

    /// <summary>Reads until the socket closes; each chunk is a fresh array the subscriber may keep.</summary>
    private async Task DrainAsync()
    {
        var buffer = new byte[ChunkSize];
        var reason = "the VM's serial console closed";
        try
        {
            int read;
            while ((read = await _socket.ReceiveAsync(buffer, SocketFlags.None, _closing.Token)) > 0)
            {
                _onOutput(buffer.AsSpan(0, read).ToArray());
            }
        }
        catch (OperationCanceledException)
        {
            reason = "detached";
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            reason = $"the VM's serial console closed: {ex.Message}";
        }

        _closed.TrySetResult(reason);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _closing.CancelAsync();
        await _reading;
        _socket.Dispose();
        _closing.Dispose();
    }
}
