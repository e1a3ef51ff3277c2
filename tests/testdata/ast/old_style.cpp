#include <iostream>
using namespace std;
void main() {
  int n;
  cin >> n;
  cout << n * 2 << endl;
}
