// `vm console NAME`: the terminal in raw mode, bytes both ways, Ctrl-] detaches (as `virsh console`).
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

internal sealed partial class ClientActions
{
    /// <summary>Ctrl-]: detaches, and never reaches the guest.</summary>
    private const byte EscapeKey = 0x1d;

    public async Task<int> VmConsoleAsync(VmConsoleArgs args, CancellationToken ct)
    {
        using var api = Connect(args.Client);
        ConsoleClient console;
        try
        {
            console = await ConsoleClient.ConnectAsync(api.Url, api.ApiKey, args.Name, args.Force, ct);
        }
        catch (ConsoleRefusedException)
        {
            // The upgrade carries no problem details: the VM itself says why (a 404 here names it, as everywhere).
            var vm = (await api.GetAsync(ApiClient.VmPath(args.Name), ct)).Read<VmDto>();
            throw new CliException(vm.State is "Running" or "Ready"
                ? $"cannot attach to '{args.Name}' yet: its host is still starting or adopting it; try again in a moment"
                : $"cannot attach to '{args.Name}': it is {vm.State}, not running");
        }
        catch (Exception ex) when (ex is WebSocketException or HttpRequestException or SocketException)
        {
            throw new CliException($"cannot reach the node at {api.Url}: {ex.Message}");
        }

        await using (console)
        {
            using var terminal = RawTerminal.Enter();
            context.Error.Write($"connected to {args.Name}; escape character is ^]\r\n");
            context.Error.Flush();
            using var detach = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var typing = Task.Run(() => TypeAsync(console, detach), CancellationToken.None);
            var ended = await ShowAsync(console, detach.Token);
            await detach.CancelAsync();
            context.Error.Write(ended is null ? "\r\ndetached\r\n" : $"\r\nconsole closed: {ended}\r\n");
            context.Error.Flush();
            return 0;
        }
    }

    /// <summary>The node's output to stdout, its notices to stderr, until the console closes (its reason) or we detach (null).</summary>
    private async Task<string?> ShowAsync(ConsoleClient console, CancellationToken ct)
    {
        await using var stdout = Console.OpenStandardOutput();
        try
        {
            while (await console.ReceiveAsync(ct) is { } message)
            {
                switch (message)
                {
                    case ConsoleMessage.Output output:
                        await stdout.WriteAsync(output.Data, ct);
                        await stdout.FlushAsync(ct);
                        break;
                    case ConsoleMessage.Notice { Type: "attached", Message: "write" }:
                        break;
                    case ConsoleMessage.Notice { Type: "ended" } ended:
                        return ended.Message;
                    case ConsoleMessage.Notice notice:
                        context.Error.Write($"\r\n[{notice.Type}] {notice.Message}\r\n");
                        context.Error.Flush();
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }

        return "the node closed the connection";
    }

    /// <summary>Keystrokes to the guest until Ctrl-] (or stdin ends); then cancels <paramref name="detach"/>.</summary>
    private static async Task TypeAsync(ConsoleClient console, CancellationTokenSource detach)
    {
        // fd 0 itself: .NET's console stream reads a terminal a line at a time (its own line editor), so ^] would wait for Enter.
        await using var stdin = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(0, ownsHandle: false), FileAccess.Read, 1);
        var buffer = new byte[1024];
        try
        {
            int read;
            while ((read = await stdin.ReadAsync(buffer, detach.Token)) > 0)
            {
                var escape = Array.IndexOf(buffer, EscapeKey, 0, read);
                if (escape != 0)
                {
                    await console.SendAsync(buffer.AsMemory(0, escape < 0 ? read : escape), detach.Token);
                }

                if (escape >= 0)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException)
        {
        }
        finally
        {
            await detach.CancelAsync();
        }
    }

    /// <summary>
    /// The terminal on stdin in raw mode (no echo, no line editing, no signals: ^C and ^] reach us as bytes) until
    /// disposed; nothing when stdin is not a terminal. termios through libc rather than stty: .NET puts back its own
    /// terminal settings whenever a child process it started exits, which would undo a raw mode that stty set.
    /// </summary>
    private sealed class RawTerminal : IDisposable
    {
        private const int StdinFd = 0;
        private const int TcsaNow = 0;

        /// <summary>struct termios is 60 bytes on Linux (x86-64 and arm64); room to spare.</summary>
        private const int TermiosSize = 128;

        private readonly byte[]? _saved;

        private RawTerminal(byte[]? saved)
        {
            _saved = saved;
        }

        public static RawTerminal Enter()
        {
            if (Console.IsInputRedirected || !OperatingSystem.IsLinux())
            {
                return new RawTerminal(null);
            }

            var saved = new byte[TermiosSize];
            if (tcgetattr(StdinFd, saved) != 0)
            {
                return new RawTerminal(null);
            }

            var raw = (byte[])saved.Clone();
            cfmakeraw(raw);
            return tcsetattr(StdinFd, TcsaNow, raw) == 0 ? new RawTerminal(saved) : new RawTerminal(null);
        }

        public void Dispose()
        {
            if (_saved is not null)
            {
                _ = tcsetattr(StdinFd, TcsaNow, _saved);
            }
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int tcgetattr(int fd, byte[] termios);

        [DllImport("libc", SetLastError = true)]
        private static extern int tcsetattr(int fd, int optionalActions, byte[] termios);

        [DllImport("libc")]
        private static extern void cfmakeraw(byte[] termios);
    }
}
