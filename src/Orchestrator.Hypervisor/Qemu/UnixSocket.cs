using System.Net.Sockets;

namespace Orchestrator.Hypervisor.Qemu;

/// <summary>Client connections to QEMU's unix sockets (QMP, the guest agent's port).</summary>
internal static class UnixSocket
{
    /// <summary>A connected stream socket; nothing is left open when the connect fails or is cancelled.</summary>
    public static async Task<Socket> ConnectAsync(string path, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
